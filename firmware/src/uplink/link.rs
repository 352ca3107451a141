//! The MQTT session. One task owns the connection: it publishes the outbox in sequence
//! order with a window of publishes in flight, turns PUBACKs into a delivered
//! watermark, publishes state and replies, and hands downstream messages to
//! [`super::downstream`].
//!
//! Each connection is a fresh rumqttc client with a clean session: rumqttc keeps
//! unacknowledged publishes only in memory, so after any break this task itself starts
//! again from the first undelivered event in the database. Events published but not
//! acknowledged before a break are sent again with the same ids; receivers deduplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{broadcast, mpsc, watch};

use super::outbox::{MARK_INTERVAL, Outbox};
use super::settings::UplinkConfig;
use super::wire::{Origin, SmsMessage, Topics, encode_event};
use super::{LinkStatus, Shared};
use crate::core::wall_now;
use crate::store::StoredEvent;

/// How long new events gather before they are read and sent while the link is idle.
const LINGER: Duration = Duration::from_millis(20);

/// A message for the broker other than an event (state, replies).
#[derive(Debug, Clone)]
pub struct Message {
    /// Full topic.
    pub topic: String,
    /// JSON bytes.
    pub payload: Vec<u8>,
    /// Retained on the broker.
    pub retain: bool,
}

/// A message from the hall server, for the downstream worker.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Full topic.
    pub topic: String,
    /// Raw bytes.
    pub payload: Vec<u8>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The broker or the network failed.
    #[error("{0}")]
    Connection(#[from] rumqttc::ConnectionError),
    /// The broker refused the connection (bad credentials, not authorised, …).
    #[error("the broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    /// The request channel to rumqttc failed.
    #[error("client: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// The outbox could not be read or marked.
    #[error("outbox: {0}")]
    Store(#[from] crate::store::StoreError),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// Everything a link needs; built by [`super::downstream::start`].
pub struct MqttLink {
    /// Settings.
    pub cfg: UplinkConfig,
    /// Stamped on events.
    pub origin: Origin,
    /// Topic names.
    pub topics: Topics,
    /// The events table.
    pub outbox: Outbox,
    /// Wakes the link when the core commits events.
    pub wake: broadcast::Receiver<Arc<StoredEvent>>,
    /// State and replies to publish.
    pub outgoing: mpsc::Receiver<Message>,
    /// Downstream messages go here.
    pub inbound: mpsc::Sender<Inbound>,
    /// Asks the state task for a fresh state document (on every connect).
    pub want_state: Arc<tokio::sync::Notify>,
    /// Shared status.
    pub shared: Shared,
    /// The retained document the broker publishes if this controller disappears.
    pub last_will: Vec<u8>,
    /// The retained document published on a clean shutdown.
    pub offline: Vec<u8>,
}

/// Per-session bookkeeping of what is in flight.
#[derive(Default)]
struct Flight {
    /// Everything at or below this seq is acknowledged (or was delivered before).
    acked: i64,
    /// The last seq handed to rumqttc.
    sent: i64,
    /// Publish requests in the order rumqttc will number them.
    requested: VecDeque<Sent>,
    /// Packet id → seq, for events rumqttc has put on the wire.
    on_wire: HashMap<u16, i64>,
    /// Events handed over, oldest first, with whether their PUBACK came.
    window: VecDeque<(i64, bool)>,
    /// Encoded events read ahead of sending.
    buffer: VecDeque<(i64, Vec<u8>)>,
    /// The table may hold more undelivered events than the buffer.
    more: bool,
    /// Packet id → id of a text message on the wire.
    sms_on_wire: HashMap<u16, String>,
    /// Text messages handed over whose PUBACK has not come.
    sms_in_flight: std::collections::HashSet<String>,
    /// Look for text messages waiting.
    sms_due: bool,
}

/// What a publish request was, for the packet id rumqttc gives it.
#[derive(Debug)]
enum Sent {
    /// An event, by seq.
    Event(i64),
    /// A text message, by id.
    Sms(String),
    /// State or a reply.
    Other,
}

impl Flight {
    fn puback(&mut self, pkid: u16) {
        let Some(seq) = self.on_wire.remove(&pkid) else {
            return;
        };
        if let Ok(i) = self.window.binary_search_by_key(&seq, |(s, _)| *s) {
            self.window[i].1 = true;
        }
        while let Some(&(s, true)) = self.window.front() {
            self.acked = s;
            self.window.pop_front();
        }
    }
}

impl MqttLink {
    /// Runs sessions until `shutdown` turns true, reconnecting with backoff.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let tls = match &self.cfg.tls {
            Some(files) => match super::tls::client_config(files) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "uplink disabled: TLS cannot be set up");
                    self.shared.update(|s| {
                        s.state = "disabled".into();
                        s.last_error = Some(e.to_string());
                    });
                    return;
                }
            },
            None => None,
        };
        let broker = format!("{}:{}", self.cfg.host, self.cfg.port);
        self.shared.update(|s| {
            s.enabled = true;
            s.broker = Some(broker.clone());
        });
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut backoff = Duration::from_millis(500);
        let max_backoff = Duration::from_secs(self.cfg.max_backoff_secs);
        loop {
            set_state(&self.shared, "connecting", None);
            let started = Instant::now();
            let outcome = self.session(tls.clone(), &mut pending, &mut shutdown).await;
            match outcome {
                Ok(()) => {
                    set_state(&self.shared, "stopped", None);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, broker = %broker, "uplink disconnected");
                    set_state(&self.shared, "disconnected", Some(e.to_string()));
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(500);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {
                    set_state(&self.shared, "stopped", None);
                    return;
                }
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    fn options(&self, tls: Option<Arc<rustls::ClientConfig>>) -> MqttOptions {
        let mut o = MqttOptions::new(
            self.cfg.client_id(&self.origin.controller_id),
            self.cfg.host.clone(),
            self.cfg.port,
        );
        o.set_keep_alive(Duration::from_secs(self.cfg.keep_alive_secs));
        o.set_clean_session(true);
        o.set_inflight(self.cfg.inflight);
        o.set_request_channel_capacity(usize::from(self.cfg.inflight) + 128);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_last_will(LastWill::new(
            self.topics.state.clone(),
            self.last_will.clone(),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &self.cfg.username {
            o.set_credentials(user.clone(), self.cfg.password.clone().unwrap_or_default());
        }
        if let Some(c) = tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(c)));
        }
        o
    }

    /// One connection, from CONNECT to the first error (or a clean shutdown: `Ok`).
    async fn session(
        &mut self,
        tls: Option<Arc<rustls::ClientConfig>>,
        pending: &mut VecDeque<Message>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let cap = usize::from(self.cfg.inflight) + 128;
        let (client, mut events) = AsyncClient::new(self.options(tls), cap);
        // Connect first: nothing is queued until the broker has said yes.
        match events.poll().await? {
            Event::Incoming(Incoming::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {}
            Event::Incoming(Incoming::ConnAck(ack)) => return Err(LinkError::Refused(ack.code)),
            _ => {}
        }
        let watermark = self.outbox.watermark().await?;
        tracing::info!(
            broker = %format!("{}:{}", self.cfg.host, self.cfg.port),
            resume_after = watermark,
            "uplink connected"
        );
        set_state(&self.shared, "connected", None);
        client.try_subscribe(self.topics.config_set.clone(), QoS::AtLeastOnce)?;
        client.try_subscribe(self.topics.cmd.clone(), QoS::AtLeastOnce)?;
        self.want_state.notify_one();
        let mut f = Flight {
            acked: watermark,
            sent: watermark,
            more: true,
            sms_due: true,
            ..Flight::default()
        };
        let mut marked = watermark;
        let outcome = self
            .pump(&client, &mut events, &mut f, &mut marked, pending, shutdown)
            .await;
        // Whatever ended the session, keep the acknowledgements already received.
        if f.acked > marked {
            self.outbox.mark(f.acked).await?;
        }
        outcome
    }

    /// The session's loop: read ahead, fill the window, follow PUBACKs, mark in batches.
    // Over 100 lines: the select loop that owns the session's in-flight state; split, it would be shared.
    async fn pump(
        &mut self,
        client: &AsyncClient,
        events: &mut rumqttc::EventLoop,
        f: &mut Flight,
        marked: &mut i64,
        pending: &mut VecDeque<Message>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let mut last_mark = Instant::now();
        let mut poll_db = tokio::time::interval(Duration::from_secs(1));
        // Text messages are looked for every second, backlog or not: they are about now.
        let mut poll_sms = tokio::time::interval(Duration::from_secs(1));
        let window = usize::from(self.cfg.inflight);
        loop {
            // Read ahead when the buffer runs low.
            if f.more && f.buffer.len() < window {
                let origin = self.origin.clone();
                let after = f.buffer.back().map_or(f.sent, |(s, _)| *s);
                let page = self
                    .outbox
                    .page(after, move |r| encode_event(&origin, r))
                    .await?;
                f.more = page.len() == super::outbox::PAGE;
                f.buffer.extend(page);
            }
            // Fill the window.
            while f.window.len() < window {
                let Some((seq, bytes)) = f.buffer.pop_front() else {
                    break;
                };
                client.try_publish(self.topics.events.clone(), QoS::AtLeastOnce, false, bytes)?;
                f.requested.push_back(Sent::Event(seq));
                f.window.push_back((seq, false));
                f.sent = seq;
            }
            if f.sms_due {
                f.sms_due = false;
                self.publish_sms(client, f).await?;
            }
            let mut queued = 0;
            while let Some(m) = pending.front() {
                if queued >= 32 {
                    break;
                }
                match client.try_publish(
                    m.topic.clone(),
                    QoS::AtLeastOnce,
                    m.retain,
                    m.payload.clone(),
                ) {
                    Ok(()) => {
                        f.requested.push_back(Sent::Other);
                        pending.pop_front();
                        queued += 1;
                    }
                    Err(_) => break,
                }
            }
            // Write the delivered mark in batches.
            // Not after every PUBACK: each mark takes SQLite's write lock for a moment,
            // and the core's next commit would wait for it.
            if f.acked > *marked
                && (last_mark.elapsed() >= MARK_INTERVAL || f.acked - *marked >= 5000)
            {
                self.outbox.mark(f.acked).await?;
                *marked = f.acked;
                last_mark = Instant::now();
            }
            self.shared.update(|s| {
                s.acked_seq = f.acked;
                s.in_flight = f.window.len();
            });
            let idle = f.buffer.is_empty() && !f.more;
            tokio::select! {
                ev = events.poll() => match ev? {
                    Event::Outgoing(Outgoing::Publish(pkid)) => match f.requested.pop_front() {
                        Some(Sent::Event(seq)) => {
                            f.on_wire.insert(pkid, seq);
                        }
                        Some(Sent::Sms(id)) => {
                            f.sms_on_wire.insert(pkid, id);
                        }
                        _ => {}
                    },
                    Event::Incoming(Incoming::PubAck(ack)) => {
                        if let Some(id) = f.sms_on_wire.remove(&ack.pkid) {
                            f.sms_in_flight.remove(&id);
                            tracing::info!(notice = %id, "near-turn text message handed to the broker");
                            self.outbox.sms_delivered(vec![id]).await?;
                        } else {
                            f.puback(ack.pkid);
                        }
                    }
                    Event::Incoming(Incoming::Publish(p)) => {
                        let msg = Inbound { topic: p.topic.clone(), payload: p.payload.to_vec() };
                        if self.inbound.try_send(msg).is_err() {
                            tracing::warn!(topic = %p.topic, "downstream queue full; message dropped");
                        }
                    }
                    _ => {}
                },
                r = self.wake.recv(), if idle => {
                    if !matches!(r, Err(broadcast::error::RecvError::Closed)) {
                        f.sms_due |= r.is_ok_and(|e| e.kind == "near_turn");
                        // Let a busy hall's commits gather for a moment: one read and
                        // one burst of publishes per handful of tickets, not per ticket.
                        tokio::time::sleep(LINGER).await;
                        while let Ok(e) = self.wake.try_recv() {
                            f.sms_due |= e.kind == "near_turn";
                        }
                        f.more = true;
                    }
                }
                _ = poll_db.tick(), if idle => f.more = true,
                _ = poll_sms.tick() => f.sms_due = true,
                m = self.outgoing.recv(), if pending.len() < 256 => {
                    if let Some(m) = m {
                        pending.push_back(m);
                    }
                }
                _ = tokio::time::sleep(MARK_INTERVAL), if f.acked > *marked => {}
                _ = shutdown.changed() => {
                    self.goodbye(client, events, f).await;
                    return Ok(());
                }
            }
        }
    }

    /// Publishes the text messages waiting that are not on their way already.
    async fn publish_sms(&self, client: &AsyncClient, f: &mut Flight) -> Result<(), LinkError> {
        for row in self.outbox.sms_pending().await? {
            if f.sms_in_flight.contains(&row.id) {
                continue;
            }
            let bytes = serde_json::to_vec(&SmsMessage::new(&self.origin, &row))
                .map_err(crate::store::StoreError::from)?;
            if client
                .try_publish(self.topics.sms.clone(), QoS::AtLeastOnce, false, bytes)
                .is_err()
            {
                // The request queue is full: the next look sends it.
                f.sms_due = true;
                break;
            }
            f.requested.push_back(Sent::Sms(row.id.clone()));
            f.sms_in_flight.insert(row.id);
        }
        Ok(())
    }

    /// A clean shutdown: the retained state goes offline, the window gets up to two
    /// seconds to be acknowledged, then DISCONNECT (so the last will is not sent).
    async fn goodbye(&self, client: &AsyncClient, events: &mut rumqttc::EventLoop, f: &mut Flight) {
        if client
            .try_publish(
                self.topics.state.clone(),
                QoS::AtLeastOnce,
                true,
                self.offline.clone(),
            )
            .is_ok()
        {
            f.requested.push_back(Sent::Other);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut last_pkid = None;
        let mut state_acked = false;
        while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, events.poll()).await {
            match ev {
                Event::Outgoing(Outgoing::Publish(pkid)) => match f.requested.pop_front() {
                    Some(Sent::Event(seq)) => {
                        f.on_wire.insert(pkid, seq);
                    }
                    Some(Sent::Other) if f.requested.is_empty() => last_pkid = Some(pkid),
                    _ => {}
                },
                Event::Incoming(Incoming::PubAck(ack)) => {
                    state_acked |= last_pkid == Some(ack.pkid);
                    f.puback(ack.pkid);
                }
                _ => {}
            }
            if state_acked && f.window.is_empty() {
                break;
            }
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
    }
}

fn set_state(shared: &Shared, state: &str, error: Option<String>) {
    shared.update(|s: &mut LinkStatus| {
        if s.state != state {
            s.since = Some(wall_now().0);
        }
        s.state = state.into();
        if error.is_some() {
            s.last_error = error;
        }
        if state != "connected" {
            s.in_flight = 0;
        }
    });
}
