//! The MQTT session. One task owns the connection: it publishes the outbox in sequence
//! order with a window of publishes in flight, turns PUBACKs into a delivered
//! watermark, publishes state and replies, and hands downstream messages to
//! [`super::downstream`].
//!
//! Each connection is a fresh rumqttc client with a clean session: rumqttc keeps
//! unacknowledged publishes only in memory, so after any break this task itself starts
//! again from the first undelivered event in the database. Events published but not
//! acknowledged before a break are sent again with the same ids; receivers deduplicate.
//!
//! A `resend` from the hall server (see [`Resend`]) moves the read cursor back, within
//! the session and without touching a delivered mark: the link sends from the lower seq
//! on again, in order, through the same window, and carries on past the newest event as
//! usual. A resend cut short by a break is taken up again by the next session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{Notify, broadcast, mpsc, watch};

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

/// Resends asked for by the hall server, waiting for the link to take them: the lowest
/// `from_seq` asked since the link last looked (a resend from 10 covers one from 50).
/// Shared by the downstream worker, which asks, and the link, which sends.
#[derive(Clone, Default)]
pub struct Resend {
    from: Arc<Mutex<Option<i64>>>,
    wake: Arc<Notify>,
}

impl Resend {
    /// Asks the link to send every event from `from_seq` on again.
    pub fn ask(&self, from_seq: i64) {
        let mut from = self.from.lock().unwrap_or_else(|p| p.into_inner());
        *from = Some(from.map_or(from_seq, |f| f.min(from_seq)));
        drop(from);
        self.wake.notify_one();
    }

    /// The resend waiting, if any, now taken.
    fn take(&self) -> Option<i64> {
        self.from.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
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
    /// Asks the setup task to publish the setup in force (on every connect).
    pub want_setup: Arc<tokio::sync::Notify>,
    /// Shared status.
    pub shared: Shared,
    /// The retained document the broker publishes if this controller disappears.
    pub last_will: Vec<u8>,
    /// The retained document published on a clean shutdown.
    pub offline: Vec<u8>,
    /// Resends asked for by the hall server.
    pub resend: Resend,
}

/// One event publish handed to rumqttc and not yet behind the acknowledged front.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Publish {
    /// Counts the session's event publishes: the window's order, and the way to find a
    /// PUBACK's publish when a resend has the same seq in flight twice.
    nr: u64,
    /// The event.
    seq: i64,
    /// Its PUBACK came.
    acked: bool,
}

/// Per-session bookkeeping of what is in flight.
#[derive(Default)]
struct Flight {
    /// Everything at or below this seq is acknowledged (or was delivered before).
    acked: i64,
    /// The last seq handed to rumqttc: the read cursor when the buffer is empty.
    sent: i64,
    /// Publish requests in the order rumqttc will number them.
    requested: VecDeque<Sent>,
    /// Packet id → publish number, for events rumqttc has put on the wire.
    on_wire: HashMap<u16, u64>,
    /// Event publishes handed over, in order, with whether their PUBACK came.
    window: VecDeque<Publish>,
    /// Event publishes handed over in this session.
    published: u64,
    /// A resend runs until the cursor passes this seq (0: none since the session began).
    resend_to: i64,
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
    /// An event, by publish number.
    Event(u64),
    /// A text message, by id.
    Sms(String),
    /// State or a reply.
    Other,
}

impl Flight {
    /// Takes the next buffered event into the window; returns its bytes to publish.
    fn next_publish(&mut self) -> Option<Vec<u8>> {
        let (seq, bytes) = self.buffer.pop_front()?;
        self.published += 1;
        self.window.push_back(Publish {
            nr: self.published,
            seq,
            acked: false,
        });
        self.requested.push_back(Sent::Event(self.published));
        self.sent = seq;
        Some(bytes)
    }

    fn puback(&mut self, pkid: u16) {
        let Some(nr) = self.on_wire.remove(&pkid) else {
            return;
        };
        if let Some(front) = self.window.front().map(|p| p.nr)
            && let Some(p) = nr
                .checked_sub(front)
                .and_then(|i| self.window.get_mut(usize::try_from(i).ok()?))
        {
            p.acked = true;
        }
        // The front moves in publish order, so everything published before an
        // acknowledged event is acknowledged too: within a pass that is every lower
        // seq; a resend's repeats of lower seqs never move the mark back.
        while let Some(&Publish {
            seq, acked: true, ..
        }) = self.window.front()
        {
            self.acked = self.acked.max(seq);
            self.window.pop_front();
        }
    }

    /// Sends again from `from_seq` on: the read cursor goes back (never forward: a
    /// resend of events not handed over yet changes nothing), the read-ahead is
    /// dropped, and what is in flight stays in flight.
    fn rewind(&mut self, from_seq: i64) {
        let cursor = from_seq.max(1) - 1;
        if cursor >= self.sent {
            return;
        }
        self.resend_to = self.resend_to.max(self.sent);
        self.sent = cursor;
        self.buffer.clear();
        self.more = true;
    }

    /// Where a resend cut short by the end of the session must start again: the lowest
    /// seq of its range not yet acknowledged, or `None` when it is done.
    fn unfinished_resend(&self) -> Option<i64> {
        let in_flight = self
            .window
            .iter()
            .filter(|p| !p.acked && p.seq <= self.resend_to)
            .map(|p| p.seq)
            .min();
        let unsent = (self.sent < self.resend_to).then_some(self.sent + 1);
        match (in_flight, unsent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
        self.want_setup.notify_one();
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
        // A resend under way is taken up again by the next session.
        if let Some(from) = f.unfinished_resend() {
            self.resend.ask(from);
        }
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
            // A resend asked for goes back before reading on.
            if let Some(from) = self.resend.take() {
                tracing::info!(from_seq = from, sent = f.sent, "resending events");
                f.rewind(from);
            }
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
                let Some(bytes) = f.next_publish() else {
                    break;
                };
                client.try_publish(self.topics.events.clone(), QoS::AtLeastOnce, false, bytes)?;
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
                        Some(Sent::Event(nr)) => {
                            f.on_wire.insert(pkid, nr);
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
                // Taken at the top of the loop.
                _ = self.resend.wake.notified() => {}
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
                    Some(Sent::Event(nr)) => {
                        f.on_wire.insert(pkid, nr);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's flight that starts after `watermark`.
    fn flight(watermark: i64) -> Flight {
        Flight {
            acked: watermark,
            sent: watermark,
            more: true,
            ..Flight::default()
        }
    }

    fn read(f: &mut Flight, upto: i64) {
        let after = f.buffer.back().map_or(f.sent, |(s, _)| *s);
        f.buffer
            .extend((after + 1..=upto).map(|s| (s, s.to_string().into_bytes())));
    }

    /// Hands over `n` events and puts them on the wire; returns their seqs.
    fn publish(f: &mut Flight, n: usize, pkid: &mut u16) -> Vec<i64> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            let bytes = f.next_publish().expect("an event buffered");
            seqs.push(String::from_utf8(bytes).unwrap().parse().unwrap());
            let Some(Sent::Event(nr)) = f.requested.pop_front() else {
                panic!("an event request");
            };
            *pkid += 1;
            f.on_wire.insert(*pkid, nr);
        }
        seqs
    }

    #[test]
    fn a_resend_sends_the_lower_seqs_again_in_order_and_never_moves_the_mark_back() {
        let (mut f, mut pkid) = (flight(0), 0);
        read(&mut f, 10);
        assert_eq!(publish(&mut f, 8, &mut pkid), (1..=8).collect::<Vec<_>>());
        for p in 1..=5 {
            f.puback(p);
        }
        assert_eq!(f.acked, 5);
        // Resend from 3 while 6–8 are in flight and 9–10 read ahead.
        f.rewind(3);
        assert_eq!((f.sent, f.buffer.len(), f.resend_to), (2, 0, 8));
        read(&mut f, 11);
        assert_eq!(publish(&mut f, 9, &mut pkid), (3..=11).collect::<Vec<_>>());
        // The repeats of 3–5 are acknowledged before 6–8 of the first pass.
        for p in 9..=11 {
            f.puback(p);
        }
        assert_eq!(f.acked, 5, "the mark never goes back, nor past 6–8");
        assert_eq!(f.unfinished_resend(), Some(6));
        for p in 6..=8 {
            f.puback(p);
        }
        assert_eq!(f.acked, 8);
        // The second pass's 6–8 still count for the resend until acknowledged.
        assert_eq!(f.unfinished_resend(), Some(6));
        for p in 12..=17 {
            f.puback(p);
        }
        assert_eq!((f.acked, f.window.len()), (11, 0));
        assert_eq!(f.unfinished_resend(), None);
    }

    #[test]
    fn a_resend_of_events_not_sent_yet_changes_nothing() {
        let (mut f, mut pkid) = (flight(4), 0);
        read(&mut f, 10);
        publish(&mut f, 2, &mut pkid);
        f.rewind(7);
        assert_eq!((f.sent, f.buffer.len(), f.resend_to), (6, 4, 0));
        assert_eq!(f.unfinished_resend(), None);
    }

    #[test]
    fn a_resend_cut_short_resumes_from_its_first_unsent_event() {
        let (mut f, mut pkid) = (flight(0), 0);
        read(&mut f, 20);
        publish(&mut f, 20, &mut pkid);
        (1..=20).for_each(|p| f.puback(p));
        f.rewind(5);
        read(&mut f, 20);
        publish(&mut f, 3, &mut pkid);
        assert_eq!(f.unfinished_resend(), Some(5));
        (21..=23).for_each(|p| f.puback(p));
        assert_eq!(f.unfinished_resend(), Some(8));
        let r = Resend::default();
        r.ask(12);
        r.ask(8);
        r.ask(30);
        assert_eq!(r.take(), Some(8));
        assert_eq!(r.take(), None);
    }
}
