//! Starting the uplink, and what comes down from the hall server: versioned queue
//! configuration and commands. Each is handled in arrival order by one worker, each
//! leaves an event in the log (so it goes back up too), and each is answered on its
//! `…/ack` topic. A state task keeps the retained `state` topic current, and a setup
//! task the retained `setup` topic (the setup in force, at every connection and after
//! every change).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::link::{Inbound, Message, MqttLink, Resend};
use super::outbox::Outbox;
use super::wire::{Cmd, CmdAck, CmdMessage, ConfigAck, ConfigSet, Origin, Topics};
use super::{Shared, apply};
use crate::config::Config;
use crate::core::{CoreError, HallCore, ReconfigureError, wall_now};
use crate::devices::printer::PrintOutcome;
use crate::store::{NewEvent, StoreError, StoredEvent};

/// Prints a ticket again (ticket, people ahead) and says what became of the print;
/// given by the API layer when the hall has a printer.
pub type Reprinter = Arc<
    dyn Fn(
            hallq_engine::Ticket,
            u32,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = PrintOutcome> + Send>>
        + Send
        + Sync,
>;

/// Commands remembered for answering repeats without doing them twice.
const REMEMBERED_COMMANDS: usize = 1000;
/// Shortest gap between two state documents while the hall is busy.
const STATE_MIN_GAP: Duration = Duration::from_secs(1);
/// Longest gap between two state documents.
const STATE_MAX_GAP: Duration = Duration::from_secs(30);
/// A setup document larger than this is not published (the hall server and the link
/// take packets up to 1 MiB): a warning says so, and the hall server keeps the last one.
const SETUP_MAX_BYTES: usize = 512 * 1024;

/// A running uplink; [`Running::stop`] publishes the offline state and disconnects.
pub struct Running {
    shutdown: watch::Sender<bool>,
    link: JoinHandle<()>,
    others: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops cleanly: offline state, pending delivered marks written, DISCONNECT.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.link).await;
        for t in self.others {
            t.abort();
        }
    }
}

/// Starts the uplink if `[uplink]` is configured.
pub fn start(
    config: &Config,
    hall: &HallCore,
    shared: Shared,
    reprint: Option<Reprinter>,
) -> Result<Option<Running>, StoreError> {
    let Some(cfg) = config.uplink.clone() else {
        return Ok(None);
    };
    let outbox = Outbox::open(&config.database())?;
    let controller = config.hall.controller_id.clone();
    let origin = Origin::new(
        &controller,
        &cfg.hall_id,
        hall.in_force().setup.utc_offset_minutes,
    );
    let topics = Topics::new(&cfg.topic_prefix, &cfg.hall_id, &controller);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (out_tx, out_rx) = mpsc::channel(256);
    let (in_tx, in_rx) = mpsc::channel(256);
    let want_state = Arc::new(Notify::new());
    let want_setup = Arc::new(Notify::new());
    let resend = Resend::default();
    let identity = json!({
        "controller_id": controller,
        "hall_id": cfg.hall_id,
        "hall_name": config.hall.name,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let offline = |reason: &str| {
        let mut v = identity.clone();
        v["status"] = "offline".into();
        v["reason"] = reason.into();
        v.to_string().into_bytes()
    };
    let link = MqttLink {
        cfg: cfg.clone(),
        origin,
        topics: topics.clone(),
        outbox: outbox.clone(),
        wake: hall.subscribe(),
        outgoing: out_rx,
        inbound: in_tx,
        want_state: want_state.clone(),
        want_setup: want_setup.clone(),
        shared: shared.clone(),
        last_will: offline("connection lost"),
        offline: offline("shut down"),
        resend: resend.clone(),
    };
    let worker = Worker {
        hall: hall.clone(),
        shared: shared.clone(),
        topics: topics.clone(),
        out: out_tx.clone(),
        outbox: outbox.clone(),
        reprint,
        file_guides: config.guide.clone(),
        remembered: HashMap::new(),
        order: VecDeque::new(),
        want_state: want_state.clone(),
        resend,
    };
    let setup = SetupTask {
        hall: hall.clone(),
        shared: shared.clone(),
        topic: topics.setup.clone(),
        out: out_tx.clone(),
        want_setup,
    };
    let state = StateTask {
        hall: hall.clone(),
        shared,
        topic: topics.state.clone(),
        out: out_tx,
        outbox: outbox.clone(),
        identity,
        want_state,
    };
    let retention = crate::store::archive::Retention {
        days: cfg.retention_days,
        dir: crate::store::archive::dir_in(&config.storage.data_dir),
        utc_offset_minutes: config.queue.utc_offset_minutes,
    };
    let others = vec![
        tokio::spawn(worker.run(in_rx)),
        tokio::spawn(state.run()),
        tokio::spawn(setup.run()),
        tokio::spawn(keep_retention(outbox, retention)),
    ];
    let link = tokio::spawn(link.run(shutdown_rx));
    Ok(Some(Running {
        shutdown,
        link,
        others,
    }))
}

/// Hourly, moves the events older than the retention to the archive. Each month removed
/// is logged by the archive; a failure removes nothing.
async fn keep_retention(outbox: Outbox, retention: crate::store::archive::Retention) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        if let Err(e) = outbox.prune(retention.clone()).await {
            tracing::warn!(error = %e, "retention stopped: nothing removed");
        }
    }
}

struct Worker {
    hall: HallCore,
    shared: Shared,
    topics: Topics,
    out: mpsc::Sender<Message>,
    outbox: Outbox,
    reprint: Option<Reprinter>,
    /// The file's guides, kept for a pushed setup that carries none.
    file_guides: std::collections::BTreeMap<String, crate::guide::Guide>,
    remembered: HashMap<String, CmdAck>,
    order: VecDeque<String>,
    want_state: Arc<Notify>,
    /// Hands resends to the link.
    resend: Resend,
}

fn event(kind: &str, mut body: Value) -> NewEvent {
    body["type"] = kind.into();
    NewEvent {
        at: wall_now(),
        kind: kind.into(),
        payload: body.to_string(),
    }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Inbound>) {
        while let Some(m) = rx.recv().await {
            if m.topic == self.topics.config_set {
                let ack = self.config(&m.payload).await;
                self.reply(&self.topics.config_ack.clone(), &ack).await;
            } else if m.topic == self.topics.cmd {
                let ack = self.command(&m.payload).await;
                self.reply(&self.topics.cmd_ack.clone(), &ack).await;
            }
            self.want_state.notify_one();
        }
    }

    async fn reply<T: serde::Serialize>(&self, topic: &str, ack: &T) {
        let payload = match serde_json::to_vec(ack) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reply could not be encoded");
                return;
            }
        };
        let _ = self
            .out
            .send(Message {
                topic: topic.into(),
                payload,
                retain: false,
            })
            .await;
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, CoreError> {
        let stored = self.hall.append(events).await?;
        for e in &stored {
            self.shared.controls.apply(&e.kind, &e.payload, e.at);
        }
        Ok(stored)
    }

    async fn config(&mut self, bytes: &[u8]) -> ConfigAck {
        let in_force = self.shared.status().config_version;
        let refuse = |version: Option<i64>, key: Option<String>, reason: String| ConfigAck {
            version,
            ok: false,
            reason: Some(reason),
            key,
            in_force,
        };
        let loose_version = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v["version"].as_i64());
        let set = match ConfigSet::parse(bytes) {
            Ok(s) => s,
            Err((key, reason)) => return refuse(loose_version, key, reason),
        };
        if let Some(current) = in_force {
            if set.version == current {
                return ConfigAck {
                    version: Some(set.version),
                    ok: true,
                    reason: Some("already in force".into()),
                    key: None,
                    in_force,
                };
            }
            if set.version < current {
                return refuse(
                    Some(set.version),
                    Some("version".into()),
                    format!(
                        "version {} is older than version {current} in force",
                        set.version
                    ),
                );
            }
        }
        let outcome = match apply::in_force(&set, &self.file_guides) {
            Ok(next) => {
                let body = json!({
                    "version": set.version,
                    "previous": in_force,
                    "services": next.setup.services.len(),
                    "windows": next.setup.windows.len(),
                    "guides": next.guides.len(),
                });
                let document = String::from_utf8_lossy(bytes).into_owned();
                self.hall
                    .reconfigure(next, document, event("config_applied", body))
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                self.shared.update(|s| s.config_version = Some(set.version));
                tracing::info!(
                    version = set.version,
                    "configuration from the hall server applied"
                );
                ConfigAck {
                    version: Some(set.version),
                    ok: true,
                    reason: None,
                    key: None,
                    in_force: Some(set.version),
                }
            }
            Err(e) => {
                let (key, reason) = match &e {
                    ReconfigureError::Rejected { key, message } => {
                        (Some(key.clone()), message.clone())
                    }
                    ReconfigureError::Core(c) => (None, c.to_string()),
                };
                tracing::warn!(version = set.version, reason = %e, "configuration refused");
                let body = json!({ "version": set.version, "key": key, "reason": reason, "in_force": in_force });
                if let Err(err) = self.append(vec![event("config_refused", body)]).await {
                    tracing::error!(error = %err, "refusal could not be recorded");
                }
                refuse(Some(set.version), key, reason)
            }
        }
    }

    async fn command(&mut self, bytes: &[u8]) -> CmdAck {
        let msg = match CmdMessage::parse(bytes) {
            Ok(m) => m,
            Err((id, reason)) => {
                return CmdAck {
                    id,
                    command: None,
                    ok: false,
                    reason: Some(reason),
                    result: None,
                };
            }
        };
        if let Some(ack) = self.remembered.get(&msg.id) {
            return ack.clone();
        }
        let name = msg.command.name();
        let outcome = self.execute(&msg).await;
        if let Err(reason) = &outcome {
            // A refused command is recorded too: everything from above is audited.
            let body = json!({ "command_id": msg.id, "command": name, "reason": reason });
            if let Err(e) = self.append(vec![event("command_refused", body)]).await {
                tracing::error!(error = %e, "refused command could not be recorded");
            }
        }
        let ack = match outcome {
            Ok(result) => CmdAck {
                id: Some(msg.id.clone()),
                command: Some(name.into()),
                ok: true,
                reason: None,
                result,
            },
            Err(reason) => CmdAck {
                id: Some(msg.id.clone()),
                command: Some(name.into()),
                ok: false,
                reason: Some(reason),
                result: None,
            },
        };
        self.order.push_back(msg.id.clone());
        self.remembered.insert(msg.id, ack.clone());
        if self.order.len() > REMEMBERED_COMMANDS
            && let Some(old) = self.order.pop_front()
        {
            self.remembered.remove(&old);
        }
        ack
    }

    /// Records a step of a follow-up (回访整改) the hall server took: the follow-up must
    /// exist and not be closed; the event keeps the note and who, and says whether the
    /// step came after the due time.
    async fn follow_up(
        &self,
        id: &str,
        ticket: u64,
        step: &str,
        note: &str,
        by: &str,
    ) -> Result<Option<Value>, String> {
        let step = crate::evaluation::Step::parse(step)
            .ok_or("step: one of received, rectified, visited, closed")?;
        let (note, by) = (note.trim(), by.trim());
        if note.chars().count() > 500 {
            return Err("note: at most 500 characters".into());
        }
        if by.is_empty() || by.chars().count() > 64 {
            return Err("by: who took the step, 1 to 64 characters".into());
        }
        let found = self
            .hall
            .query(move |_, store| crate::store::follow_ups::get(store.conn(), ticket))
            .await
            .map_err(|e| format!("not recorded: {e}"))?
            .map_err(|e| format!("not recorded: {e}"))?;
        let Some(f) = found else {
            return Err(format!("ticket: no follow-up for ticket {ticket}"));
        };
        if f.state == "closed" {
            return Err(format!("ticket: the follow-up of {} is closed", f.number));
        }
        let late = wall_now().0 >= f.due_at;
        self.append(vec![event(
            "follow_up_progressed",
            json!({
                "ticket": ticket, "number": f.number, "step": step.as_str(), "note": note,
                "by": by, "late": late, "command_id": id,
            }),
        )])
        .await
        .map_err(|e| format!("not recorded: {e}"))?;
        Ok(Some(
            json!({ "ticket": ticket, "number": f.number, "state": step.as_str(), "late": late }),
        ))
    }

    /// Sends events again from `from_seq` (the hall server found a gap): recorded as
    /// `events_resent`, then handed to the link, which rewinds its cursor. Events that
    /// retention moved to the archive cannot be sent; the result says from where on
    /// they are sent instead.
    async fn resend_events(&self, id: &str, from_seq: &Value) -> Result<Option<Value>, String> {
        let from = from_seq
            .as_i64()
            .filter(|n| *n >= 1)
            .ok_or("from_seq: an integer of at least 1, the first seq to send again")?;
        let range = self
            .outbox
            .resend_range(from)
            .await
            .map_err(|e| format!("not read: {e}"))?;
        self.append(vec![event(
            "events_resent",
            json!({
                "command_id": id, "from_seq": range.from_seq, "last_seq": range.last_seq,
                "archived_before": range.archived_before,
            }),
        )])
        .await
        .map_err(|e| format!("not recorded: {e}"))?;
        if range.from_seq <= range.last_seq {
            self.resend.ask(range.from_seq);
        }
        tracing::info!(
            from_seq = range.from_seq,
            last_seq = range.last_seq,
            archived_before = range.archived_before,
            "the hall server asked for events again"
        );
        Ok(Some(json!({
            "from_seq": range.from_seq, "last_seq": range.last_seq,
            "archived_before": range.archived_before,
        })))
    }

    /// Runs one command; `Ok` carries the optional result for the ack.
    // Over 100 lines: one arm per command of the hall server, side by side to compare.
    async fn execute(&self, msg: &CmdMessage) -> Result<Option<Value>, String> {
        let id = msg.id.clone();
        let store_err = |e: CoreError| format!("not recorded: {e}");
        match &msg.command {
            Cmd::LockKiosk { message } => {
                let message = message.trim();
                if message.is_empty() || message.chars().count() > 200 {
                    return Err("message: 1 to 200 characters, shown to citizens".into());
                }
                self.append(vec![event(
                    "kiosk_locked",
                    json!({ "command_id": id, "message": message }),
                )])
                .await
                .map_err(store_err)?;
                Ok(None)
            }
            Cmd::UnlockKiosk {} => {
                let was_locked = self.shared.controls.lock().is_some();
                self.append(vec![event(
                    "kiosk_unlocked",
                    json!({ "command_id": id, "was_locked": was_locked }),
                )])
                .await
                .map_err(store_err)?;
                Ok(None)
            }
            Cmd::ShowNotice { text, minutes } => {
                let text = text.trim();
                if text.is_empty() || text.chars().count() > 500 {
                    return Err("text: 1 to 500 characters".into());
                }
                if minutes == &Some(0) {
                    return Err("minutes: at least 1, or leave it out to show until cleared".into());
                }
                let until = minutes.map(|m| wall_now().0 + i64::from(m) * 60_000);
                self.append(vec![event(
                    "notice_shown",
                    json!({ "command_id": id, "text": text, "until": until }),
                )])
                .await
                .map_err(store_err)?;
                Ok(None)
            }
            Cmd::ClearNotice {} => {
                self.append(vec![event("notice_cleared", json!({ "command_id": id }))])
                    .await
                    .map_err(store_err)?;
                Ok(None)
            }
            Cmd::ReprintTicket { ticket } => {
                let Some(reprint) = &self.reprint else {
                    return Err("this controller has no ticket printer configured".into());
                };
                let tid = hallq_engine::TicketId(*ticket);
                let found = self
                    .hall
                    .query(move |e, _| {
                        e.ticket(tid)
                            .map(|t| (t.clone(), e.ahead(tid).unwrap_or(0)))
                    })
                    .await
                    .map_err(store_err)?;
                let Some((t, ahead)) = found else {
                    return Err(format!("ticket: there is no ticket {ticket} today"));
                };
                if t.state.is_terminal() {
                    return Err(format!(
                        "ticket: {} is no longer in the queue ({})",
                        t.number,
                        t.state.as_str()
                    ));
                }
                let outcome = reprint(t.clone(), ahead).await;
                self.append(vec![event(
                    "ticket_reprinted",
                    json!({
                        "ticket": t.id, "number": t.number, "by": "hall_server",
                        "outcome": outcome, "command_id": id,
                    }),
                )])
                .await
                .map_err(store_err)?;
                match &outcome {
                    PrintOutcome::Printing | PrintOutcome::Queued => Ok(Some(
                        json!({ "ticket": t.id, "number": t.number, "print": outcome }),
                    )),
                    PrintOutcome::Unavailable { code } => {
                        Err(format!("the printer cannot print now ({code})"))
                    }
                    PrintOutcome::NotPrinted => Err("the ticket was not printed".into()),
                }
            }
            Cmd::FollowUp {
                ticket,
                step,
                note,
                by,
            } => self.follow_up(&id, *ticket, step, note, by).await,
            Cmd::Resend { from_seq } => self.resend_events(&id, from_seq).await,
            Cmd::RequestReport { period } => {
                let p = parse_period(period).ok_or_else(|| {
                    "period: a day YYYY-MM-DD, an ISO week YYYY-Www or a month YYYY-MM".to_string()
                })?;
                let report = self
                    .outbox
                    .read(move |c| Ok(crate::report::build(c, p)?))
                    .await
                    .map_err(|e| format!("report failed: {e}"))?;
                self.append(vec![event(
                    "report_requested",
                    json!({ "command_id": id, "period": period, "from": report.from, "to": report.to }),
                )])
                .await
                .map_err(store_err)?;
                Ok(Some(
                    serde_json::to_value(report).map_err(|e| e.to_string())?,
                ))
            }
        }
    }
}

fn parse_period(text: &str) -> Option<crate::report::Period> {
    use crate::report::Period;
    if text.contains("-W") {
        Period::week(text)
    } else if text.len() == 7 {
        Period::month(text)
    } else {
        text.parse().ok().map(Period::day)
    }
}

/// Keeps the retained `setup` topic current: the setup in force as a `config/set`
/// document ([`apply::document`]), published when the link connects (it asks) and
/// whenever the hall core puts another setup in force (a pushed one applied; the file's
/// is read at start, and a start is a connection).
struct SetupTask {
    hall: HallCore,
    shared: Shared,
    topic: String,
    out: mpsc::Sender<Message>,
    want_setup: Arc<Notify>,
}

impl SetupTask {
    async fn run(self) {
        let mut changed = self.hall.setting().changed();
        loop {
            tokio::select! {
                _ = self.want_setup.notified() => {}
                r = changed.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
            }
            // Not connected: the connection asks again.
            if self.shared.status().state != "connected" {
                continue;
            }
            let now = changed.borrow_and_update().clone();
            let payload = match apply::document(&now).and_then(|d| serde_json::to_vec(&d)) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "the setup in force could not be written");
                    continue;
                }
            };
            if payload.len() > SETUP_MAX_BYTES {
                tracing::warn!(
                    bytes = payload.len(),
                    version = ?now.version,
                    "the setup in force is too large to publish on the setup topic"
                );
                continue;
            }
            tracing::debug!(version = ?now.version, "setup document");
            let message = Message {
                topic: self.topic.clone(),
                payload,
                retain: true,
            };
            if self.out.send(message).await.is_err() {
                return;
            }
        }
    }
}

struct StateTask {
    hall: HallCore,
    shared: Shared,
    topic: String,
    out: mpsc::Sender<Message>,
    outbox: Outbox,
    identity: Value,
    want_state: Arc<Notify>,
}

impl StateTask {
    async fn run(self) {
        let mut events = self.hall.subscribe();
        let mut changed = false;
        loop {
            if !changed {
                tokio::select! {
                    _ = self.want_state.notified() => {}
                    r = events.recv() => {
                        if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(STATE_MAX_GAP) => {}
                }
            }
            if self.shared.status().state == "connected" {
                match self.document().await {
                    Ok(doc) => {
                        tracing::debug!(waiting = %doc["queue"]["waiting"], "state document");
                        let _ = self
                            .out
                            .send(Message {
                                topic: self.topic.clone(),
                                payload: doc.to_string().into_bytes(),
                                retain: true,
                            })
                            .await;
                    }
                    Err(e) => tracing::warn!(error = %e, "state not published"),
                }
            }
            tokio::time::sleep(STATE_MIN_GAP).await;
            // Whatever happened during the gap goes into the next document, at once.
            changed = false;
            while events.try_recv().is_ok() {
                changed = true;
            }
        }
    }

    async fn document(&self) -> Result<Value, String> {
        let queue = self
            .hall
            .query(|e, _| {
                let services: Vec<Value> = e
                    .setup()
                    .services
                    .iter()
                    .zip(e.loads())
                    .map(|(d, l)| {
                        json!({
                            "code": l.code, "name": crate::report::period::names(&d.name),
                            "waiting": l.waiting, "issued": l.issued,
                            "open_windows": l.open_windows,
                            "estimated_wait_minutes": l.estimated_wait_minutes,
                            "longest_wait_secs": l.longest_wait_secs,
                        })
                    })
                    .collect();
                let staffed = e.windows().values().filter(|w| w.staff.is_some()).count();
                // Each window as supervision shows it (staff ids, never names), for the
                // hall server's drill-down.
                let windows: Vec<Value> = e
                    .setup()
                    .windows
                    .iter()
                    .filter_map(|d| e.windows().get(&d.number).map(|w| (d, w)))
                    .map(|(d, w)| crate::window_view::window_row(e, d, w))
                    .collect();
                json!({
                    "windows": windows,
                    "day": e.day().to_string(),
                    "waiting": services.iter().map(|s| s["waiting"].as_u64().unwrap_or(0)).sum::<u64>(),
                    "windows_staffed": staffed,
                    "services": services,
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        let backlog = self.outbox.backlog().await.map_err(|e| e.to_string())?;
        let (last_seq, delivered) = self.outbox.seqs().await.map_err(|e| e.to_string())?;
        let now = wall_now().0;
        let status = self.shared.status();
        let mut doc = self.identity.clone();
        doc["status"] = "online".into();
        doc["at"] = now.into();
        doc["config_version"] = json!(status.config_version);
        doc["kiosk"] = match self.shared.controls.lock() {
            Some(l) => json!({ "locked": true, "message": l.message, "since": l.since }),
            None => json!({ "locked": false }),
        };
        doc["notice"] = json!(self.shared.controls.notice(now));
        doc["queue"] = queue;
        doc["backlog"] =
            json!({ "undelivered": backlog.undelivered, "oldest_at": backlog.oldest_at });
        // The tail, for a gap with no later event to show it: the broker may have
        // dropped events it acknowledged (no subscriber, or one that died).
        doc["events"] = json!({
            "last_seq": last_seq,
            "delivered_seq": delivered.max(status.acked_seq).min(last_seq),
        });
        doc["devices"] = self.shared.devices();
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::in_force::InForce;
    use crate::store::Store;
    use crate::uplink::broker::{Broker, BrokerOptions};

    /// What a client of the broker heard on its filters, in order of arrival.
    struct Heard {
        rx: mpsc::UnboundedReceiver<(String, Value)>,
        kept: Vec<(String, Value)>,
    }

    impl Heard {
        /// A client subscribed to `filters`.
        fn listen(port: u16, name: &str, filters: &[String]) -> Heard {
            let mut o = rumqttc::MqttOptions::new(name, "127.0.0.1", port);
            o.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut events) = rumqttc::AsyncClient::new(o, 16);
            for f in filters {
                client
                    .try_subscribe(f.clone(), rumqttc::QoS::AtLeastOnce)
                    .expect("subscribe");
            }
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let _client = client;
                while let Ok(ev) = events.poll().await {
                    if let rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)) = ev {
                        let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic.clone(), body)).is_err() {
                            return;
                        }
                    }
                }
            });
            Heard {
                rx,
                kept: Vec::new(),
            }
        }

        /// The first message on `topic` that `f` accepts, heard already or within 20 s;
        /// the others stay for later questions.
        async fn first(&mut self, topic: &str, f: impl Fn(&Value) -> bool) -> Value {
            if let Some(i) = self.kept.iter().position(|(t, b)| t == topic && f(b)) {
                return self.kept.remove(i).1;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some((t, body))) if t == topic && f(&body) => return body,
                    Ok(Some(other)) => self.kept.push(other),
                    Ok(None) => panic!("the listener stopped"),
                    Err(_) => panic!("nothing on {topic} within 20 s; heard {:?}", self.kept),
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_setup_in_force_is_published_retained_at_connect_and_after_a_pushed_setup_applies()
    {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
            .expect("mosquitto (Debian package mosquitto) starts");
        let mut config = Config::example();
        config.storage.data_dir = dir.path().join("data");
        config.uplink = Some(
            toml::from_str(&format!(
                "host = \"127.0.0.1\"\nport = {}\nhall_id = \"qingshan\"",
                broker.port
            ))
            .unwrap(),
        );
        std::fs::create_dir_all(&config.storage.data_dir).unwrap();
        let store = Store::open(&config.database()).unwrap();
        let shared = Shared::load(store.conn()).unwrap();
        let file = InForce::file(config.queue.clone(), config.guide.clone());
        let (hall, _core) = HallCore::start(file, store).unwrap();
        let topics = Topics::new("hallq", "qingshan", &config.hall.controller_id);
        let mut heard = Heard::listen(
            broker.port,
            "test-hall-server",
            &[topics.setup.clone(), topics.config_ack.clone()],
        );
        let running = start(&config, &hall, shared, None)
            .unwrap()
            .expect("uplink");

        // At connect: the file's setup, without a version, with the file's guides.
        let first = heard.first(&topics.setup, |_| true).await;
        assert!(first["version"].is_null(), "{first}");
        let set: ConfigSet = serde_json::from_value(json!({
            "version": 1, "queue": first["queue"], "guide": first["guide"],
        }))
        .expect("the document is what config/set takes");
        let read = apply::in_force(&set, &std::collections::BTreeMap::new()).expect("reads back");
        assert_eq!(read.setup, config.queue);
        assert_eq!(
            first["guide"].as_object().map(|g| g.len()),
            Some(config.guide.len())
        );

        // A pushed setup applied: published again, with its version and the change.
        let mut queue = first["queue"].clone();
        queue["services"][0]["quota"] = json!({"minutes": 30, "max": 12});
        queue["services"][0]["name"]["zh-CN"] = json!("社会保障（医保）");
        let client = {
            let mut o = rumqttc::MqttOptions::new("test-pusher", "127.0.0.1", broker.port);
            o.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut events) = rumqttc::AsyncClient::new(o, 16);
            tokio::spawn(async move { while events.poll().await.is_ok() {} });
            client
        };
        client
            .publish(
                topics.config_set.clone(),
                rumqttc::QoS::AtLeastOnce,
                false,
                json!({"version": 1, "queue": queue}).to_string(),
            )
            .await
            .unwrap();
        let ack = heard.first(&topics.config_ack, |_| true).await;
        assert_eq!(
            (ack["ok"].clone(), ack["in_force"].clone()),
            (json!(true), json!(1)),
            "{ack}"
        );
        let second = heard.first(&topics.setup, |d| d["version"] == 1).await;
        assert_eq!(second["queue"]["services"][0]["quota"]["max"], 12);
        assert_eq!(
            second["queue"]["services"][0]["name"]["zh-CN"],
            "社会保障（医保）"
        );
        // A pushed setup without guides keeps the file's guides of its services: in force,
        // so in the document.
        assert_eq!(second["guide"], first["guide"]);

        // Retained: whoever subscribes later gets the setup in force at once.
        let mut later = Heard::listen(
            broker.port,
            "test-late",
            std::slice::from_ref(&topics.setup),
        );
        let retained = later.first(&topics.setup, |_| true).await;
        assert_eq!(retained, second);

        running.stop().await;
        drop(later);
        drop(heard);
        hall.close().await;
    }
}
