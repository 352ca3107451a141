//! What travels over MQTT: the topic names and the JSON on them. Documented for the
//! hall server's developers in `docs/events.md`; the event envelope's schema is
//! `docs/events.schema.json`.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::store::uplink::OutboxRow;

/// The topics of one controller: `<prefix>/<hall>/<controller>/…`.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Events, QoS 1, in sequence order.
    pub events: String,
    /// Retained state; the last will sets it offline.
    pub state: String,
    /// Retained: the queue setup in force, in the shape `config/set` takes (version,
    /// queue, guide), at every connection and whenever it changes.
    pub setup: String,
    /// Configuration from the hall server.
    pub config_set: String,
    /// Replies to configuration.
    pub config_ack: String,
    /// Commands from the hall server.
    pub cmd: String,
    /// Replies to commands.
    pub cmd_ack: String,
    /// Near-turn text messages for the hall server's SMS gateway, QoS 1. The only
    /// topic that carries a mobile number; never retained.
    pub sms: String,
}

impl Topics {
    /// Topics under `prefix/hall/controller`.
    pub fn new(prefix: &str, hall: &str, controller: &str) -> Topics {
        let base = format!("{prefix}/{hall}/{controller}");
        Topics {
            events: format!("{base}/events"),
            state: format!("{base}/state"),
            setup: format!("{base}/setup"),
            config_set: format!("{base}/config/set"),
            config_ack: format!("{base}/config/ack"),
            cmd: format!("{base}/cmd"),
            cmd_ack: format!("{base}/cmd/ack"),
            sms: format!("{base}/sms"),
        }
    }
}

/// Who is sending, stamped on every event.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The controller id (`hall.controller_id`).
    pub controller_id: String,
    /// The hall id in topics (`uplink.hall_id`).
    pub hall_id: String,
    /// The hall's clock offset, for the readable `time` field.
    pub offset: FixedOffset,
}

impl Origin {
    /// An origin with the hall's offset in minutes east of UTC.
    pub fn new(controller_id: &str, hall_id: &str, utc_offset_minutes: i32) -> Origin {
        Origin {
            controller_id: controller_id.into(),
            hall_id: hall_id.into(),
            offset: FixedOffset::east_opt(utc_offset_minutes * 60)
                .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset")),
        }
    }

    /// RFC 3339 local time with milliseconds, e.g. `2026-11-23T09:30:00.000+08:00`.
    pub fn time(&self, ms: i64) -> String {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
            .to_rfc3339_opts(SecondsFormat::Millis, false)
    }
}

/// The event envelope as JSON bytes. The payload is embedded as stored, so what the
/// hall server receives is byte for byte what the controller committed.
pub fn encode_event(origin: &Origin, row: &OutboxRow) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(row.payload.len() + 256);
    out.push_str("{\"id\":");
    out.push_str(&q(&row.id));
    out.push_str(",\"controller_id\":");
    out.push_str(&q(&origin.controller_id));
    out.push_str(",\"hall_id\":");
    out.push_str(&q(&origin.hall_id));
    out.push_str(",\"seq\":");
    out.push_str(&row.seq.to_string());
    out.push_str(",\"schema\":");
    out.push_str(&row.schema.to_string());
    out.push_str(",\"at\":");
    out.push_str(&row.at.to_string());
    out.push_str(",\"time\":");
    out.push_str(&q(&origin.time(row.at)));
    out.push_str(",\"type\":");
    out.push_str(&q(&row.kind));
    out.push_str(",\"payload\":");
    out.push_str(&row.payload);
    out.push('}');
    out.into_bytes()
}

/// An event as the hall server (and `hallq receive`) reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Event id, the same on every resend: the key to deduplicate by.
    pub id: String,
    /// The controller that recorded it.
    pub controller_id: String,
    /// The hall.
    pub hall_id: String,
    /// Per-controller sequence, without gaps.
    pub seq: i64,
    /// Layout version.
    pub schema: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// The same instant in the hall's local time.
    pub time: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Type-specific body.
    pub payload: serde_json::Value,
}

/// A near-turn text message as the hall server's SMS gateway reads it (topic `sms`).
/// `id` is the `near_turn` event's: a message sent again after a break has the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsMessage {
    /// The `near_turn` event's id: the key to deduplicate by.
    pub id: String,
    /// The controller.
    pub controller_id: String,
    /// The hall.
    pub hall_id: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// The same instant in the hall's local time.
    pub time: String,
    /// The mainland mobile number, 11 digits.
    pub mobile: String,
    /// The `near_turn` event's body: ticket, number, service, ahead, minutes.
    pub near_turn: serde_json::Value,
}

impl SmsMessage {
    /// The message for an outbox row.
    pub fn new(origin: &Origin, row: &crate::store::notices::SmsRow) -> SmsMessage {
        SmsMessage {
            id: row.id.clone(),
            controller_id: origin.controller_id.clone(),
            hall_id: origin.hall_id.clone(),
            at: row.at,
            time: origin.time(row.at),
            mobile: row.mobile.clone(),
            near_turn: row.body.clone(),
        }
    }
}

/// A configuration pushed on `config/set`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSet {
    /// Increases with every configuration the hall server publishes.
    pub version: i64,
    /// The queue setup: service catalogue, windows, calendar and rules, in the same
    /// shape as `[queue]` in `hallq.toml`.
    pub queue: serde_json::Value,
    /// The service guides, by service code, in the shape of the `[guide.<code>]`
    /// tables; without it the file's guides of the services kept stay in force.
    #[serde(default)]
    pub guide: Option<serde_json::Value>,
}

impl ConfigSet {
    /// Reads a configuration message; on failure the key at fault (if any) and why.
    /// The whole message must be the one document: what is applied is stored as sent
    /// and read again at every start, so bytes after it would make it unreadable then.
    pub fn parse(bytes: &[u8]) -> Result<ConfigSet, (Option<String>, String)> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let set: ConfigSet = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            ((path != ".").then_some(path), e.into_inner().to_string())
        })?;
        de.end()
            .map_err(|e| (None, format!("after the document: {e}")))?;
        Ok(set)
    }
}

/// The setup in force as a controller publishes it on `setup` (retained): the shape
/// `config/set` takes, so that the hall server can edit it and push it back. `version` is
/// the hall server's number of the pushed setup in force, null for the file's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupDocument {
    /// The version in force; null while the file's `[queue]` is.
    #[serde(default)]
    pub version: Option<i64>,
    /// The queue setup in force, in the shape of `[queue]`.
    pub queue: serde_json::Value,
    /// The guides in force by service code, in the shape of the `[guide.<code>]` tables.
    #[serde(default)]
    pub guide: Option<serde_json::Value>,
}

impl SetupDocument {
    /// Reads a setup document: one JSON object whose `queue` (and `guide`, if any) are
    /// objects; on failure why.
    pub fn parse(bytes: &[u8]) -> Result<SetupDocument, String> {
        let doc: SetupDocument = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !doc.queue.is_object() {
            return Err("queue: an object, the [queue] table as JSON".into());
        }
        if doc.guide.as_ref().is_some_and(|g| !g.is_object()) {
            return Err("guide: an object of guides by service code".into());
        }
        Ok(doc)
    }
}

/// The reply on `config/ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigAck {
    /// The version this answers (absent when the message could not be read at all).
    pub version: Option<i64>,
    /// Applied, or refused.
    pub ok: bool,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The offending key, e.g. `queue.services[1].prefix`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
    /// The version in force after this message.
    pub in_force: Option<i64>,
}

/// A command on `cmd`: `{"id": "...", "command": "lock_kiosk", ...fields}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CmdMessage {
    /// The hall server's id for this command; repeated ids are answered, not redone.
    pub id: String,
    /// What to do.
    pub command: Cmd,
}

impl CmdMessage {
    /// Reads a command; on failure returns the id (if one could be read) and the reason.
    pub fn parse(bytes: &[u8]) -> Result<CmdMessage, (Option<String>, String)> {
        let mut v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| (None, format!("not JSON: {e}")))?;
        let Some(obj) = v.as_object_mut() else {
            return Err((None, "a command is a JSON object".into()));
        };
        let id = match obj.remove("id") {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 128 => s,
            _ => {
                return Err((
                    None,
                    "id: a string of 1 to 128 characters is required".into(),
                ));
            }
        };
        let command = serde_json::from_value::<Cmd>(v)
            .map_err(|e| (Some(id.clone()), format!("command: {e}")))?;
        Ok(CmdMessage { id, command })
    }
}

/// The commands the hall server may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Cmd {
    /// Stop the kiosks issuing tickets, showing `message` to citizens.
    LockKiosk {
        /// Shown on the kiosk and returned by the API, e.g. "系统维护，请到服务台取号".
        message: String,
    },
    /// Let the kiosks issue tickets again.
    UnlockKiosk {},
    /// Show a notice (通知公告) on the boards.
    ShowNotice {
        /// The text.
        text: String,
        /// Minutes to show it; absent means until cleared.
        #[serde(default)]
        minutes: Option<u32>,
    },
    /// Take the notice down.
    ClearNotice {},
    /// Print a ticket again (the citizen lost it).
    ReprintTicket {
        /// Ticket id.
        ticket: u64,
    },
    /// A step of the follow-up (回访整改) of a bad rating, as the platform took it.
    FollowUp {
        /// The ticket rated (the record's `ticket`).
        ticket: u64,
        /// `received`, `rectified`, `visited` or `closed`.
        step: String,
        /// What was done.
        #[serde(default)]
        note: String,
        /// Who did it.
        by: String,
    },
    /// Send a report of a day (`YYYY-MM-DD`), ISO week (`YYYY-Www`) or month (`YYYY-MM`).
    RequestReport {
        /// The period.
        period: String,
    },
    /// Send every event from `from_seq` on again (the hall server found a gap).
    Resend {
        /// Read as any JSON value so that a missing, fractional or text value is
        /// refused by name (`from_seq`) through `command_refused`, like other bad fields.
        #[serde(default)]
        from_seq: serde_json::Value,
    },
}

impl Cmd {
    /// The name used on the wire and in events.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::LockKiosk { .. } => "lock_kiosk",
            Cmd::UnlockKiosk {} => "unlock_kiosk",
            Cmd::ShowNotice { .. } => "show_notice",
            Cmd::ClearNotice {} => "clear_notice",
            Cmd::ReprintTicket { .. } => "reprint_ticket",
            Cmd::RequestReport { .. } => "request_report",
            Cmd::FollowUp { .. } => "follow_up",
            Cmd::Resend { .. } => "resend",
        }
    }
}

/// The reply on `cmd/ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdAck {
    /// The command's id (absent when it could not be read).
    pub id: Option<String>,
    /// The command name.
    pub command: Option<String>,
    /// Done, or refused.
    pub ok: bool,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What it produced (the report, for `request_report`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_embeds_the_stored_payload_and_reads_back() {
        let origin = Origin::new("qingshan-main", "qingshan", 480);
        let row = OutboxRow {
            seq: 42,
            id: "0b7c3f9e-1111-4222-8333-944455556666".into(),
            at: 1_795_395_600_123,
            kind: "ticket_called".into(),
            schema: 1,
            payload: r#"{"type":"ticket_called","number":"A001","window":3}"#.into(),
        };
        let bytes = encode_event(&origin, &row);
        let e: Envelope = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(e.seq, 42);
        assert_eq!(e.id, row.id);
        assert_eq!(e.controller_id, "qingshan-main");
        assert_eq!(e.kind, "ticket_called");
        assert_eq!(e.payload["number"], "A001");
        assert_eq!(e.time, "2026-11-23T09:00:00.123+08:00");
    }

    #[test]
    fn a_configuration_with_bytes_after_the_document_is_refused() {
        // Found by the mqtt_config fuzz target: `}}` then a stray byte was applied, and
        // the stored copy no longer read at the next start, which silently went back to
        // the file's queue while the hall server believed its version was in force.
        let (key, reason) = ConfigSet::parse(b"{\"version\":1,\"queue\":{}}\xd9").unwrap_err();
        assert_eq!(key, None);
        assert!(reason.contains("trailing"), "{reason}");
        assert_eq!(
            ConfigSet::parse(b"{\"version\":1,\"queue\":{}}\n")
                .unwrap()
                .version,
            1
        );
        let (key, _) = ConfigSet::parse(br#"{"version":"x","queue":{}}"#).unwrap_err();
        assert_eq!(key.as_deref(), Some("version"));
    }

    #[test]
    fn a_setup_document_reads_with_its_version_or_none() {
        let doc =
            SetupDocument::parse(br#"{"version":3,"queue":{"services":[]},"guide":{}}"#).unwrap();
        assert_eq!(doc.version, Some(3));
        let file = SetupDocument::parse(br#"{"version":null,"queue":{}}"#).unwrap();
        assert_eq!((file.version, file.guide), (None, None));
        for bad in [
            &br#"{"version":1,"queue":[]}"#[..],
            br#"{"version":1,"queue":{},"guide":"x"}"#,
            br#"{"version":1,"queue":{},"mobile":"13800000000"}"#,
            b"{",
        ] {
            assert!(
                SetupDocument::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn commands_read_by_name_and_unknown_ones_are_refused() {
        let text = r#"{"id":"c1","command":"lock_kiosk","message":"维护中"}"#;
        let m = CmdMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(
            m.command,
            Cmd::LockKiosk {
                message: "维护中".into()
            }
        );
        let m = CmdMessage::parse(br#"{"id":"c2","command":"unlock_kiosk"}"#).unwrap();
        assert_eq!(m.command.name(), "unlock_kiosk");
        let (id, reason) = CmdMessage::parse(br#"{"id":"c3","command":"reboot"}"#).unwrap_err();
        assert_eq!(id.as_deref(), Some("c3"));
        assert!(reason.contains("reboot"), "{reason}");
        assert!(CmdMessage::parse(b"{\"command\":\"unlock_kiosk\"}").is_err());
    }

    #[test]
    fn a_resend_reads_whatever_from_seq_is_for_the_worker_to_judge() {
        let m = CmdMessage::parse(br#"{"id":"r1","command":"resend","from_seq":42}"#).unwrap();
        assert_eq!(
            m.command,
            Cmd::Resend {
                from_seq: 42.into()
            }
        );
        assert_eq!(m.command.name(), "resend");
        let m = CmdMessage::parse(br#"{"id":"r2","command":"resend"}"#).unwrap();
        assert_eq!(
            m.command,
            Cmd::Resend {
                from_seq: serde_json::Value::Null
            }
        );
        let (id, reason) =
            CmdMessage::parse(br#"{"id":"r3","command":"resend","from_seq":1,"to_seq":2}"#)
                .unwrap_err();
        assert_eq!(id.as_deref(), Some("r3"));
        assert!(reason.contains("to_seq"), "{reason}");
    }

    #[test]
    fn a_follow_up_step_reads_with_its_note_and_who() {
        let text = r#"{"id":"f1","command":"follow_up","ticket":7,"step":"visited","note":"已电话回访","by":"李科长"}"#;
        let m = CmdMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(
            m.command,
            Cmd::FollowUp {
                ticket: 7,
                step: "visited".into(),
                note: "已电话回访".into(),
                by: "李科长".into(),
            }
        );
        assert_eq!(m.command.name(), "follow_up");
        let (id, reason) =
            CmdMessage::parse(br#"{"id":"f2","command":"follow_up","ticket":7,"step":"closed"}"#)
                .unwrap_err();
        assert_eq!(id.as_deref(), Some("f2"));
        assert!(reason.contains("by"), "{reason}");
    }
}
