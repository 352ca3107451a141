//! The ingest: every controller's events from the broker into PostgreSQL.
//!
//! One MQTT 5 session per instance, clean start, with manual acknowledgements:
//! - `$share/<group>/<prefix>/+/+/events`, QoS 1: the instances of one platform split
//!   the events between them, and when one dies the broker sends new events to the
//!   others at once;
//! - `$share/<group>/<prefix>/+/+/cmd/ack` and `…/config/ack`: the controllers' answers
//!   to commands and setups (the gap repair's `resend`, [`crate::push`]'s pushes);
//! - `<prefix>/+/+/state` (not shared, retained): every instance knows every
//!   controller's state;
//! - `<prefix>/+/+/setup` (not shared, retained): each controller's setup in force, for
//!   the dashboard's setup editor;
//! - with `[sms]`, `$share/<group>/<prefix>/+/+/sms`: the near-turn text messages,
//!   stored in the same transaction as the events and posted by [`crate::sms`].
//!
//! A message is acknowledged to the broker only after the transaction that stored it
//! has committed. While PostgreSQL is down the batch is retried and nothing more is
//! acknowledged, so the broker stops sending once `receive_maximum` messages are
//! unacknowledged, and resumes when the batch is in. A message that was in flight to
//! an instance that died is dropped by the broker (mosquitto does not hand it to another
//! member of the share); the gap it leaves is found by seq and asked for again from
//! its controller ([`crate::repair`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hallq::uplink::wire::{Envelope, SetupDocument, SmsMessage};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{Notify, mpsc, watch};
use tokio_postgres::Client;

use crate::config::{Broker, Ingest};
use crate::db::{self, Row};
use crate::metrics::Metrics;
use crate::partitions::Months;
use crate::rollup::DayClock;

/// What a topic is, under `<prefix>/<hall>/<controller>/`.
#[derive(Debug, Clone, PartialEq)]
pub enum Topic {
    /// `events`.
    Events {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
    /// `state`.
    State {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
    /// `setup`.
    Setup {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
    /// `cmd/ack`.
    CmdAck {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
    /// `config/ack`.
    ConfigAck {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
    /// `sms`.
    Sms {
        /// Hall in the topic.
        hall: String,
        /// Controller in the topic.
        controller: String,
    },
}

/// Reads a topic; `None` for one this server does not take.
pub fn topic(prefix: &str, t: &str) -> Option<Topic> {
    let rest = t.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let hall = parts.next()?.to_string();
    let controller = parts.next()?.to_string();
    match parts.next()? {
        "events" => Some(Topic::Events { hall, controller }),
        "state" => Some(Topic::State { hall, controller }),
        "setup" => Some(Topic::Setup { hall, controller }),
        "cmd/ack" => Some(Topic::CmdAck { hall, controller }),
        "config/ack" => Some(Topic::ConfigAck { hall, controller }),
        "sms" => Some(Topic::Sms { hall, controller }),
        _ => None,
    }
}

/// The MQTT options of an instance.
pub fn options(broker: &Broker, client_id: &str, ingest: &Ingest) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_clean_start(true);
    o.set_manual_acks(true);
    o.set_receive_maximum(Some(ingest.receive_maximum));
    o.set_max_packet_size(Some(1 << 20));
    if let (Some(u), Some(p)) = (&broker.username, &broker.password) {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &broker.tls {
        o.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            hallq::uplink::tls::client_config(files)?,
        )));
    }
    Ok(o)
}

/// A message taken from the broker, with the connection it came on (an acknowledgement
/// belongs to that connection only).
struct Taken {
    publish: Publish,
    connection: u64,
}

/// The MQTT session's side of an instance.
struct Reader {
    prefix: String,
    group: String,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    sms: bool,
}

impl Reader {
    /// Runs the MQTT session: subscribes at every connection, hands messages to the
    /// writer. Returns when `shutdown` is set.
    ///
    /// The hand-over never waits: the event loop polled here is also what sends the
    /// writer's acknowledgements (and the pings), so a reader waiting for room at a
    /// writer waiting for room to acknowledge would stop both, and the broker would drop
    /// the session as silent (seen under a province's load). What bounds the queue is
    /// the broker's flow control: at most `receive_maximum` messages unacknowledged.
    async fn run(
        self,
        mut events: EventLoop,
        writer: mpsc::UnboundedSender<Taken>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Reader {
            prefix,
            group,
            client,
            connection,
            metrics,
            sms,
        } = self;
        let mut backoff = Duration::from_millis(200);
        loop {
            let polled = tokio::select! {
                p = events.poll() => p,
                _ = shutdown.changed() => {
                    let _ = client.disconnect().await;
                    return;
                }
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(200);
                    connection.fetch_add(1, Ordering::SeqCst);
                    metrics.set_mqtt(true);
                    tracing::info!("connected to the broker");
                    let mut filters = vec![
                        (format!("{prefix}/+/+/events"), true),
                        (format!("{prefix}/+/+/cmd/ack"), true),
                        (format!("{prefix}/+/+/config/ack"), true),
                        (format!("{prefix}/+/+/state"), false),
                        (format!("{prefix}/+/+/setup"), false),
                    ];
                    if sms {
                        filters.push((format!("{prefix}/+/+/sms"), true));
                    }
                    for (filter, shared) in filters {
                        let filter = if shared {
                            format!("$share/{group}/{filter}")
                        } else {
                            filter
                        };
                        if let Err(e) = client.subscribe(filter, QoS::AtLeastOnce).await {
                            tracing::warn!("subscribe: {e}");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let taken = Taken {
                        publish,
                        connection: connection.load(Ordering::SeqCst),
                    };
                    if writer.send(taken).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    metrics.set_mqtt(false);
                    tracing::warn!("broker: {e}; again in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Starts the session and the writer; returns the client (for commands) and the tasks.
/// With `sms` (the sender's wake-up), the `sms` topic is taken too and the sender is
/// woken after each commit that stored new text messages. `months` is woken after a
/// commit that stored a row into `events_default` whose month can be made.
#[allow(clippy::too_many_arguments)] // the instance's parts, each used once
pub fn start(
    broker: &Broker,
    instance: &str,
    clock: DayClock,
    ingest: &Ingest,
    db: Client,
    db_url: String,
    metrics: Arc<Metrics>,
    sms: Option<Arc<Notify>>,
    months: Arc<Months>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(AsyncClient, Vec<tokio::task::JoinHandle<()>>)> {
    let o = options(broker, &format!("hallq-server-{instance}"), ingest)?;
    let (client, events) = AsyncClient::new(o, usize::from(ingest.receive_maximum) + 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let connection = Arc::new(AtomicU64::new(0));
    let reader = Reader {
        prefix: broker.topic_prefix.clone(),
        group: broker.share_group.clone(),
        client: client.clone(),
        connection: connection.clone(),
        metrics: metrics.clone(),
        sms: sms.is_some(),
    };
    let reader = tokio::spawn(reader.run(events, tx, shutdown));
    let writer = Writer {
        prefix: broker.topic_prefix.clone(),
        instance: instance.into(),
        batch_max: ingest.batch_max,
        receive_maximum: usize::from(ingest.receive_maximum),
        batch_wait: Duration::from_millis(ingest.batch_ms),
        clock,
        client: client.clone(),
        db,
        db_url,
        connection,
        metrics,
        sms_wake: sms,
        months,
    };
    let writer = tokio::spawn(writer.run(rx));
    Ok((client, vec![reader, writer]))
}

/// Takes messages in batches, stores them, then acknowledges them.
struct Writer {
    prefix: String,
    instance: String,
    batch_max: usize,
    /// The most messages the broker should send unacknowledged.
    receive_maximum: usize,
    batch_wait: Duration,
    clock: DayClock,
    client: AsyncClient,
    db: Client,
    db_url: String,
    connection: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    sms_wake: Option<Arc<Notify>>,
    months: Arc<Months>,
}

/// A batch, read.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    sms: Vec<SmsMessage>,
    states: Vec<(String, String, serde_json::Value)>,
    setups: Vec<(String, String, SetupDocument)>,
    acks: Vec<(String, String, serde_json::Value)>,
    config_acks: Vec<(String, serde_json::Value)>,
    rejected: Vec<(String, String, Vec<u8>)>,
}

/// Reads one events message against its topic: the envelope must name the hall and
/// controller of the topic it came on (the broker's ACL lets a controller publish under
/// its own topics only, so a document naming another one is refused, not stored).
pub fn read_event(hall: &str, controller: &str, body: &[u8]) -> Result<Row, String> {
    let e: Envelope = serde_json::from_slice(body).map_err(|e| format!("not an event: {e}"))?;
    if e.hall_id != hall || e.controller_id != controller {
        return Err(format!(
            "names {}/{} but came on {hall}/{controller}",
            e.hall_id, e.controller_id
        ));
    }
    if e.seq < 1 {
        return Err(format!("seq {} is not positive", e.seq));
    }
    let id = uuid::Uuid::parse_str(&e.id).map_err(|_| format!("id {:?} is not a UUID", e.id))?;
    Ok(Row {
        id,
        controller_id: e.controller_id,
        hall_id: e.hall_id,
        seq: e.seq,
        at: e.at,
        kind: e.kind,
        payload: e.payload,
    })
}

impl Writer {
    fn read(&self, taken: &[Taken]) -> Batch {
        let mut b = Batch::default();
        for t in taken {
            let name = String::from_utf8_lossy(&t.publish.topic).into_owned();
            let body = &t.publish.payload;
            match topic(&self.prefix, &name) {
                Some(Topic::Events { hall, controller }) => {
                    match read_event(&hall, &controller, body) {
                        Ok(row) => b.rows.push(row),
                        Err(why) => b.rejected.push((name, why, body.to_vec())),
                    }
                }
                Some(Topic::State { hall, controller }) => {
                    // An empty retained message clears a state: nothing to keep.
                    if body.is_empty() {
                        continue;
                    }
                    match serde_json::from_slice(body) {
                        Ok(v) => b.states.push((hall, controller, v)),
                        Err(e) => b
                            .rejected
                            .push((name, format!("state: {e}"), body.to_vec())),
                    }
                }
                Some(Topic::Setup { hall, controller }) => {
                    // An empty retained message clears it: nothing to keep.
                    if body.is_empty() {
                        continue;
                    }
                    match SetupDocument::parse(body) {
                        Ok(doc) => b.setups.push((hall, controller, doc)),
                        Err(e) => b
                            .rejected
                            .push((name, format!("setup: {e}"), body.to_vec())),
                    }
                }
                Some(Topic::CmdAck { hall, controller }) => match serde_json::from_slice(body) {
                    Ok(v) => b.acks.push((hall, controller, v)),
                    Err(e) => b
                        .rejected
                        .push((name, format!("cmd/ack: {e}"), body.to_vec())),
                },
                Some(Topic::ConfigAck { controller, .. }) => match serde_json::from_slice(body) {
                    Ok(v) => b.config_acks.push((controller, v)),
                    Err(e) => b
                        .rejected
                        .push((name, format!("config/ack: {e}"), body.to_vec())),
                },
                Some(Topic::Sms { hall, controller }) => {
                    match crate::sms::read_sms(&hall, &controller, body) {
                        Ok(m) => b.sms.push(m),
                        // The body may hold a mobile number: it is not kept.
                        Err(why) => b.rejected.push((
                            name,
                            format!("sms: {why}"),
                            b"(withheld: a text message may hold a mobile number)".to_vec(),
                        )),
                    }
                }
                None => b
                    .rejected
                    .push((name, "unknown topic".into(), body.to_vec())),
            }
        }
        b
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Taken>) {
        let mut taken: Vec<Taken> = Vec::with_capacity(self.batch_max);
        let mut warned = false;
        loop {
            match rx.recv().await {
                Some(t) => taken.push(t),
                None => return,
            }
            if rx.len() > 2 * self.receive_maximum && !warned {
                warned = true;
                tracing::warn!(
                    "{} messages wait to be stored, more than receive_maximum ({}) allows: the \
                     broker does not hold to it; set its max_inflight_messages to receive_maximum",
                    rx.len(),
                    self.receive_maximum
                );
            }
            let deadline = tokio::time::Instant::now() + self.batch_wait;
            while taken.len() < self.batch_max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(t)) => taken.push(t),
                    Ok(None) | Err(_) => break,
                }
            }
            let mut batch = self.read(&taken);
            self.write(&mut batch).await;
            let now = self.connection.load(Ordering::SeqCst);
            for t in taken.drain(..) {
                // An acknowledgement for a connection that has ended would name a
                // packet id of a session the broker has dropped.
                if t.connection == now
                    && let Err(e) = self.client.ack(&t.publish).await
                {
                    tracing::warn!("ack: {e}");
                }
            }
        }
    }

    /// Stores the batch, retrying until PostgreSQL takes it.
    async fn write(&mut self, batch: &mut Batch) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.try_write(batch).await {
                Ok(()) => {
                    self.metrics.set_db(true);
                    return;
                }
                Err(e) => {
                    self.metrics.set_db(false);
                    tracing::warn!(
                        "storing a batch of {}: {e}; again in {wait:?}",
                        batch.rows.len()
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                    if self.db.is_closed() {
                        match db::connect(&self.db_url, Duration::ZERO).await {
                            Ok(c) => self.db = c,
                            Err(e) => tracing::warn!("reconnecting to postgresql: {e}"),
                        }
                    }
                }
            }
        }
    }

    async fn try_write(&mut self, batch: &mut Batch) -> Result<(), db::DbError> {
        let started = Instant::now();
        let at = crate::now_ms();
        if !batch.rows.is_empty() || !batch.sms.is_empty() {
            let stored = db::store(
                &mut self.db,
                &mut batch.rows,
                &mut batch.sms,
                &self.instance,
                at,
                &self.clock,
            )
            .await?;
            self.metrics
                .stored(&stored, &batch.rows, at, started.elapsed());
            if batch.rows.iter().any(|r| self.months.wants(r.at)) {
                self.months.wake();
            }
            // Committed: a retry of what follows must not store (and count) them again.
            batch.rows.clear();
            batch.sms.clear();
            if stored.sms > 0
                && let Some(wake) = &self.sms_wake
            {
                wake.notify_one();
            }
        }
        for (hall, controller, state) in &batch.states {
            db::store_state(&self.db, controller, hall, state, at).await?;
        }
        for (hall, controller, setup) in &batch.setups {
            db::store_setup(&self.db, controller, hall, setup, at).await?;
        }
        for (_, controller, ack) in &batch.acks {
            crate::repair::answered(&self.db, controller, ack).await?;
            crate::push::command_answered(&self.db, controller, ack, at).await?;
        }
        for (controller, ack) in &batch.config_acks {
            crate::push::setup_answered(&self.db, controller, ack, at).await?;
        }
        for (topic, why, body) in &batch.rejected {
            tracing::warn!("refused a message on {topic}: {why}");
            db::reject(&self.db, topic, at, why, body).await?;
            self.metrics.rejected();
        }
        batch.states.clear();
        batch.setups.clear();
        batch.acks.clear();
        batch.config_acks.clear();
        batch.rejected.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            topic("hallq", "hallq/qs/main/events"),
            Some(Topic::Events {
                hall: "qs".into(),
                controller: "main".into()
            })
        );
        assert_eq!(
            topic("hallq", "hallq/qs/main/cmd/ack"),
            Some(Topic::CmdAck {
                hall: "qs".into(),
                controller: "main".into()
            })
        );
        assert_eq!(
            topic("hallq", "hallq/qs/main/sms"),
            Some(Topic::Sms {
                hall: "qs".into(),
                controller: "main".into()
            })
        );
        assert_eq!(
            topic("hallq", "hallq/qs/main/setup"),
            Some(Topic::Setup {
                hall: "qs".into(),
                controller: "main".into()
            })
        );
        assert_eq!(topic("hallq", "hallq/qs/main/config/set"), None);
        assert_eq!(topic("hallq", "other/qs/main/events"), None);
    }

    #[test]
    fn an_event_must_name_its_topic() {
        let body = br#"{"id":"6f1c0c1e-8d7b-4a53-9c55-0f2f3c0c2a11","controller_id":"main","hall_id":"qs","seq":3,"schema":1,"at":5,"time":"t","type":"ticket_issued","payload":{"type":"ticket_issued"}}"#;
        let row = read_event("qs", "main", body).expect("reads");
        assert_eq!(
            (row.seq, row.at, row.kind.as_str()),
            (3, 5, "ticket_issued")
        );
        assert!(
            read_event("qs", "other", body)
                .unwrap_err()
                .contains("came on qs/other")
        );
        let bad = String::from_utf8_lossy(body).replace("6f1c0c1e-8d7b", "nope");
        assert!(
            read_event("qs", "main", bad.as_bytes())
                .unwrap_err()
                .contains("UUID")
        );
        assert!(
            read_event("qs", "main", b"{")
                .unwrap_err()
                .contains("not an event")
        );
    }
}
