//! Pushes from above (下发): a supervisor sends one hall, or every hall of a region, a
//! command the controllers already take on `cmd` (lock or unlock the kiosks, a notice on
//! the boards or its removal, a step of a 好差评 follow-up) or a queue setup on
//! `config/set` (services, windows, hours, quotas, rules, guides). Each push is recorded
//! with who sent it, to which controllers, and each controller's answer as it comes back
//! on `cmd/ack` or `config/ack`; the audit table has it too.
//!
//! Delivery is at least once: a controller that has not answered within the gap
//! repair's `repair_after_secs` (offline, or the message was lost with the broker) is
//! sent the same push again, for a day. The controllers carry out a command id once (they answer a
//! repeat with the first answer) and answer a setup version already in force `ok`, so a
//! repeat changes nothing.
//!
//! A setup is checked here with the controller's own rules before anything is sent, so a
//! mistake is answered at once naming its key (`queue.services[1].prefix`); what only
//! the hall can judge (a service with citizens waiting cannot go) comes back as the
//! controller's refusal. Versions grow per controller: each push takes the next above
//! what the controller reports in force (in its state and its `setup` document) and what
//! was pushed to it before, under an advisory lock so two instances never hand out the
//! same one.

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::auth::Account;
use crate::db::{self, DbError};

/// Pushes older than this are no longer sent again.
pub const RESEND_FOR_MS: i64 = 24 * 3_600_000;
/// The advisory lock that serialises the recording of pushes (versions).
const PUSH_LOCK: i64 = 0x6861_6c6c_7075_7368;

/// Publishes pushes: the ingest's MQTT session and the topic prefix.
#[derive(Clone)]
pub struct Pusher {
    /// The instance's MQTT client.
    pub client: AsyncClient,
    /// The controllers' topic prefix (`hallq`).
    pub prefix: String,
}

/// What is pushed.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// A command on `cmd`: its name and fields (without `id`).
    Command {
        /// `lock_kiosk`, `unlock_kiosk`, `show_notice`, `clear_notice`, `follow_up`.
        name: &'static str,
        /// The command's fields.
        fields: Map<String, Value>,
    },
    /// A queue setup on `config/set`.
    Setup {
        /// The `[queue]` table as JSON.
        queue: Value,
        /// The guides by service code, or none (the hall's own stay).
        guide: Option<Value>,
    },
}

impl Push {
    /// The command's name (`setup` for a queue setup).
    pub fn name(&self) -> &'static str {
        match self {
            Push::Command { name, .. } => name,
            Push::Setup { .. } => "setup",
        }
    }

    /// What is recorded of it: the request as read.
    pub fn body(&self) -> Value {
        match self {
            Push::Command { name, fields } => {
                let mut m = fields.clone();
                m.insert("command".into(), json!(name));
                Value::Object(m)
            }
            Push::Setup { queue, guide } => {
                json!({ "command": "setup", "queue": queue, "guide": guide })
            }
        }
    }

    /// The message for one controller.
    pub fn message(&self, id: &str, version: Option<i64>) -> Value {
        match self {
            Push::Command { name, fields } => {
                let mut m = fields.clone();
                m.insert("id".into(), json!(id));
                m.insert("command".into(), json!(name));
                Value::Object(m)
            }
            Push::Setup { queue, guide } => {
                let mut m = Map::new();
                m.insert("version".into(), json!(version));
                m.insert("queue".into(), queue.clone());
                if let Some(g) = guide {
                    m.insert("guide".into(), g.clone());
                }
                Value::Object(m)
            }
        }
    }

    /// The topic leaf it goes on.
    fn leaf(&self) -> &'static str {
        match self {
            Push::Command { .. } => "cmd",
            Push::Setup { .. } => "config/set",
        }
    }
}

/// A request that cannot be pushed: the field at fault and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    /// The field (`command`, `message`, `queue.services[1].prefix` …).
    pub field: String,
    /// Why.
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        message: message.into(),
    }
}

/// The commands a hall or region may be sent from the dashboard or the API.
pub const COMMANDS: &[&str] = &[
    "lock_kiosk",
    "unlock_kiosk",
    "show_notice",
    "clear_notice",
    "setup",
];

/// Reads a push request (`{"command": …, …fields}`), with the controllers' own limits,
/// naming the field of the first problem. `follow_up` is not read here: it goes to the
/// one controller that holds the rating ([`follow_up`]).
pub fn read(body: &Value) -> Result<Push, Bad> {
    let Some(obj) = body.as_object() else {
        return Err(bad("command", "a JSON object with a command"));
    };
    let Some(command) = obj.get("command").and_then(Value::as_str) else {
        return Err(bad("command", format!("one of {}", COMMANDS.join(", "))));
    };
    let allowed: &[&str] = match command {
        "lock_kiosk" => &["message"],
        "unlock_kiosk" | "clear_notice" => &[],
        "show_notice" => &["text", "minutes"],
        "setup" => &["queue", "guide"],
        other => {
            return Err(bad(
                "command",
                format!("{other:?}: use one of {}", COMMANDS.join(", ")),
            ));
        }
    };
    if let Some(k) = obj
        .keys()
        .find(|k| *k != "command" && !allowed.contains(&k.as_str()))
    {
        return Err(bad(k, format!("{command} takes no {k}")));
    }
    let text = |key: &str, max: usize| -> Result<String, Bad> {
        let t = obj
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if t.is_empty() || t.chars().count() > max {
            return Err(bad(key, format!("1 to {max} characters")));
        }
        Ok(t.to_string())
    };
    let mut fields = Map::new();
    let name = match command {
        "lock_kiosk" => {
            fields.insert("message".into(), json!(text("message", 200)?));
            "lock_kiosk"
        }
        "unlock_kiosk" => "unlock_kiosk",
        "clear_notice" => "clear_notice",
        "show_notice" => {
            fields.insert("text".into(), json!(text("text", 500)?));
            match obj.get("minutes") {
                None | Some(Value::Null) => {}
                Some(m) => {
                    let Some(n) = m.as_u64().filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                    else {
                        return Err(bad(
                            "minutes",
                            "a whole number of minutes, at least 1 (leave it out to show until cleared)",
                        ));
                    };
                    fields.insert("minutes".into(), json!(n));
                }
            }
            "show_notice"
        }
        _ => {
            let queue = obj
                .get("queue")
                .ok_or_else(|| bad("queue", "the setup: the [queue] table as JSON"))?;
            let setup = hallq::uplink::apply::parse_setup(queue).map_err(refusal)?;
            let guide = match obj.get("guide") {
                None | Some(Value::Null) => None,
                Some(g) => {
                    hallq::uplink::apply::parse_guides(g, &setup).map_err(refusal)?;
                    Some(g.clone())
                }
            };
            return Ok(Push::Setup {
                queue: queue.clone(),
                guide,
            });
        }
    };
    Ok(Push::Command { name, fields })
}

/// The controller's refusal of a setup, as a bad field.
fn refusal(e: hallq::core::ReconfigureError) -> Bad {
    match e {
        hallq::core::ReconfigureError::Rejected { key, message } => Bad {
            field: key,
            message,
        },
        other => bad("queue", other.to_string()),
    }
}

/// A step of a 好差评 follow-up entered on the server, for the controller holding it.
pub fn follow_up(ticket: i64, body: &Value, by: &str) -> Result<Push, Bad> {
    let Some(obj) = body.as_object() else {
        return Err(bad("step", "a JSON object with step and note"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "step" && *k != "note") {
        return Err(bad(k, format!("a follow-up step takes no {k}")));
    }
    let step = obj.get("step").and_then(Value::as_str).unwrap_or_default();
    if !["received", "rectified", "visited", "closed"].contains(&step) {
        return Err(bad("step", "one of received, rectified, visited, closed"));
    }
    let note = match obj.get("note") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.trim().chars().count() <= 500 => s.trim().to_string(),
        Some(_) => return Err(bad("note", "text, at most 500 characters")),
    };
    let mut fields = Map::new();
    fields.insert("ticket".into(), json!(ticket));
    fields.insert("step".into(), json!(step));
    fields.insert("note".into(), json!(note));
    fields.insert("by".into(), json!(by.chars().take(64).collect::<String>()));
    Ok(Push::Command {
        name: "follow_up",
        fields,
    })
}

/// One controller a push goes to.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Controller.
    pub controller_id: String,
    /// Its hall.
    pub hall_id: String,
    /// The setup version it is sent (setups only).
    pub version: Option<i64>,
}

/// Why a push was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// None of the halls has a controller that reported to this server.
    #[error("no controller of these halls has reported to this server yet")]
    NoControllers,
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for PushError {
    fn from(e: tokio_postgres::Error) -> Self {
        PushError::Db(e.into())
    }
}

/// Records a push by `who` to every controller of `halls` (or, with `controller`, to
/// that one only) with the audit row, in one transaction on a connection of its own;
/// returns its id and targets. Nothing is sent yet: [`send`] does.
pub async fn record(
    db_url: &str,
    who: &Account,
    scope: &str,
    halls: &[String],
    controller: Option<&str>,
    push: &Push,
    now: i64,
) -> Result<(String, Vec<Target>), PushError> {
    let mut db = db::connect(db_url, std::time::Duration::ZERO).await?;
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUSH_LOCK])
        .await?;
    let targets: Vec<Target> = tx
        .query(
            "SELECT c.controller_id, c.hall_id,
                    greatest(
                        CASE WHEN jsonb_typeof(c.state->'config_version') = 'number'
                             THEN (c.state->>'config_version')::numeric::bigint END,
                        (SELECT s.version FROM setups s WHERE s.controller_id = c.controller_id),
                        (SELECT max(t.version) FROM push_targets t
                         WHERE t.controller_id = c.controller_id),
                        0) + 1
             FROM controllers c
             WHERE c.hall_id = ANY($1) AND ($2::text IS NULL OR c.controller_id = $2)
             ORDER BY c.hall_id, c.controller_id",
            &[&halls, &controller],
        )
        .await?
        .iter()
        .map(|r| Target {
            controller_id: r.get(0),
            hall_id: r.get(1),
            version: matches!(push, Push::Setup { .. }).then(|| r.get(2)),
        })
        .collect();
    if targets.is_empty() {
        return Err(PushError::NoControllers);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let body = push.body();
    tx.execute(
        "INSERT INTO pushes (id, at, login, command, scope, body) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &now, &who.login, &push.name(), &scope, &Json(&body)],
    )
    .await?;
    let controllers: Vec<&str> = targets.iter().map(|t| t.controller_id.as_str()).collect();
    let their_halls: Vec<&str> = targets.iter().map(|t| t.hall_id.as_str()).collect();
    let versions: Vec<Option<i64>> = targets.iter().map(|t| t.version).collect();
    tx.execute(
        "INSERT INTO push_targets (push_id, controller_id, hall_id, version)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])",
        &[&id, &controllers, &their_halls, &versions],
    )
    .await?;
    let mut detail = json!({ "push": id, "controllers": controllers });
    if let Push::Command { fields, .. } = push {
        detail["fields"] = Value::Object(fields.clone());
    }
    tx.execute(
        "INSERT INTO audit (at, login, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[
            &now,
            &who.login,
            &format!("push {}", push.name()),
            &scope,
            &Json(&detail),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok((id, targets))
}

/// Publishes a recorded push to its targets and notes when; a target the broker does
/// not take now is sent again by [`resend_due`].
pub async fn send(
    db: &Client,
    pusher: &Pusher,
    id: &str,
    push: &Push,
    targets: &[Target],
    now: i64,
) -> Result<(), DbError> {
    let mut sent = Vec::new();
    for t in targets {
        let topic = format!(
            "{}/{}/{}/{}",
            pusher.prefix,
            t.hall_id,
            t.controller_id,
            push.leaf()
        );
        let msg = push.message(id, t.version).to_string();
        match pusher
            .client
            .publish(topic, QoS::AtLeastOnce, false, msg.into_bytes())
            .await
        {
            Ok(()) => sent.push(t.controller_id.as_str()),
            Err(e) => tracing::warn!("push {id} to {}: {e}", t.controller_id),
        }
    }
    db.execute(
        "UPDATE push_targets SET sent_at = $2, attempts = attempts + 1
         WHERE push_id = $1 AND controller_id = ANY($3)",
        &[&id, &now, &sent],
    )
    .await?;
    Ok(())
}

/// Sends again what has gone unanswered for `after_ms`, for a day after the push. Which
/// instance sends is settled by the conditional update of `sent_at`.
pub async fn resend_due(
    db: &Client,
    pusher: &Pusher,
    after_ms: i64,
    now: i64,
) -> Result<usize, DbError> {
    let rows = db
        .query(
            "SELECT p.id, p.body, t.controller_id, t.hall_id, t.version, t.sent_at
             FROM push_targets t JOIN pushes p ON p.id = t.push_id
             WHERE t.answered_at IS NULL AND p.at > $1
               AND (t.sent_at IS NULL OR t.sent_at < $2)
             ORDER BY p.at LIMIT 500",
            &[&(now - RESEND_FOR_MS), &(now - after_ms)],
        )
        .await?;
    let mut resent = 0;
    for r in rows {
        let id: String = r.get(0);
        let body: Json<Value> = r.get(1);
        let target = Target {
            controller_id: r.get(2),
            hall_id: r.get(3),
            version: r.get(4),
        };
        let was: Option<i64> = r.get(5);
        let Some(push) = recorded(&body.0) else {
            continue;
        };
        let claimed = db
            .execute(
                "UPDATE push_targets SET sent_at = $3
                 WHERE push_id = $1 AND controller_id = $2 AND sent_at IS NOT DISTINCT FROM $4",
                &[&id, &target.controller_id, &now, &was],
            )
            .await?;
        if claimed == 0 {
            continue;
        }
        tracing::info!(
            "push {id} ({}) to {}: no answer yet, sending again",
            push.name(),
            target.controller_id
        );
        send(db, pusher, &id, &push, std::slice::from_ref(&target), now).await?;
        resent += 1;
    }
    Ok(resent)
}

/// A push as recorded ([`Push::body`]) read back.
fn recorded(body: &Value) -> Option<Push> {
    let mut fields = body.as_object()?.clone();
    let command = fields.remove("command")?;
    let name = match command.as_str()? {
        "setup" => {
            return Some(Push::Setup {
                queue: fields.remove("queue")?,
                guide: fields.remove("guide").filter(|g| !g.is_null()),
            });
        }
        "lock_kiosk" => "lock_kiosk",
        "unlock_kiosk" => "unlock_kiosk",
        "show_notice" => "show_notice",
        "clear_notice" => "clear_notice",
        "follow_up" => "follow_up",
        _ => return None,
    };
    Some(Push::Command { name, fields })
}

/// A controller's answer on `cmd/ack` to a push (matched by the command's id; other
/// answers, such as `resend`'s, match nothing).
pub async fn command_answered(
    db: &Client,
    controller: &str,
    ack: &Value,
    at: i64,
) -> Result<(), DbError> {
    let Some(id) = ack.get("id").and_then(Value::as_str) else {
        return Ok(());
    };
    let ok = ack.get("ok").and_then(Value::as_bool).unwrap_or(false);
    let reason = ack.get("reason").and_then(Value::as_str);
    db.execute(
        "UPDATE push_targets SET answered_at = $3, ok = $4, reason = $5, result = $6
         WHERE push_id = $1 AND controller_id = $2 AND answered_at IS NULL",
        &[&id, &controller, &at, &ok, &reason, &Json(ack)],
    )
    .await?;
    Ok(())
}

/// A controller's answer on `config/ack` to a setup (matched by version).
pub async fn setup_answered(
    db: &Client,
    controller: &str,
    ack: &Value,
    at: i64,
) -> Result<(), DbError> {
    let Some(version) = ack.get("version").and_then(Value::as_i64) else {
        return Ok(());
    };
    let ok = ack.get("ok").and_then(Value::as_bool).unwrap_or(false);
    let reason = ack.get("reason").and_then(Value::as_str).map(|r| {
        match ack.get("key").and_then(Value::as_str) {
            Some(k) => format!("{k}: {r}"),
            None => r.to_string(),
        }
    });
    db.execute(
        "UPDATE push_targets SET answered_at = $3, ok = $4, reason = $5, result = $6
         WHERE controller_id = $1 AND version = $2 AND answered_at IS NULL",
        &[&controller, &version, &at, &ok, &reason, &Json(ack)],
    )
    .await?;
    Ok(())
}

/// The latest pushes that reached any of `halls` (all with `None`; only `hall`, if given), newest first,
/// each with its targets among those halls and their answers.
pub async fn list(
    db: &Client,
    halls: Option<&[String]>,
    hall: Option<&str>,
    limit: i64,
) -> Result<Vec<Value>, DbError> {
    let rows = db
        .query(
            "SELECT p.id, p.at, p.login, p.command, p.scope, p.body,
                    jsonb_agg(jsonb_build_object(
                        'controller_id', t.controller_id, 'hall_id', t.hall_id,
                        'version', t.version, 'sent_at', t.sent_at, 'attempts', t.attempts,
                        'answered_at', t.answered_at, 'ok', t.ok, 'reason', t.reason,
                        'result', t.result -> 'result')
                      ORDER BY t.hall_id, t.controller_id)
             FROM pushes p JOIN push_targets t ON t.push_id = p.id
             WHERE ($1::text[] IS NULL OR t.hall_id = ANY($1)) AND ($2::text IS NULL OR t.hall_id = $2)
             GROUP BY p.id ORDER BY p.at DESC LIMIT $3",
            &[&halls, &hall, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let body: Json<Value> = r.get(5);
            let targets: Json<Value> = r.get(6);
            let answered = targets.0.as_array().map_or(0, |a| {
                a.iter().filter(|t| !t["answered_at"].is_null()).count()
            });
            let refused = targets
                .0
                .as_array()
                .map_or(0, |a| a.iter().filter(|t| t["ok"] == json!(false)).count());
            json!({
                "id": r.get::<_, String>(0),
                "at": r.get::<_, i64>(1),
                "by": r.get::<_, String>(2),
                "command": r.get::<_, String>(3),
                "scope": r.get::<_, String>(4),
                "body": body.0,
                "answered": answered,
                "refused": refused,
                "targets": targets.0,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup_json() -> Value {
        let doc: toml::Table = toml::from_str(hallq::config::EXAMPLE_HALL).expect("example");
        serde_json::to_value(&doc["queue"]).expect("json")
    }

    #[test]
    fn commands_are_read_with_the_controllers_limits_and_name_the_field() {
        let ok = read(&json!({"command": "lock_kiosk", "message": "  系统维护  "})).unwrap();
        assert_eq!(ok.message("x", None)["message"], "系统维护");
        assert_eq!(ok.message("x", None)["id"], "x");
        for (body, field) in [
            (json!([]), "command"),
            (json!({}), "command"),
            (json!({"command": "reboot"}), "command"),
            (json!({"command": "lock_kiosk"}), "message"),
            (
                json!({"command": "lock_kiosk", "message": "x".repeat(201)}),
                "message",
            ),
            (
                json!({"command": "unlock_kiosk", "message": "x"}),
                "message",
            ),
            (json!({"command": "show_notice", "text": ""}), "text"),
            (
                json!({"command": "show_notice", "text": "停电", "minutes": 0}),
                "minutes",
            ),
            (
                json!({"command": "show_notice", "text": "停电", "minutes": 1.5}),
                "minutes",
            ),
            (json!({"command": "setup"}), "queue"),
        ] {
            assert_eq!(
                read(&body).map_err(|e| e.field),
                Err(field.to_string()),
                "{body}"
            );
        }
        let notice = read(&json!({"command": "show_notice", "text": "午休", "minutes": 90}));
        assert_eq!(notice.unwrap().message("n", None)["minutes"], 90);
    }

    #[test]
    fn a_setup_is_checked_as_the_controller_checks_it() {
        let queue = setup_json();
        let push = read(&json!({"command": "setup", "queue": queue})).unwrap();
        let msg = push.message("ignored", Some(7));
        assert_eq!(msg["version"], 7);
        assert!(msg.get("guide").is_none() && msg.get("id").is_none());
        assert_eq!(recorded(&push.body()), Some(push));
        let mut bad_queue = setup_json();
        bad_queue["services"][1]["prefix"] = bad_queue["services"][0]["prefix"].clone();
        let err = read(&json!({"command": "setup", "queue": bad_queue})).unwrap_err();
        assert_eq!(err.field, "queue.services[1].prefix", "{err:?}");
        let err = read(&json!({"command": "setup", "queue": setup_json(),
                               "guide": {"NOPE": {}}}))
        .unwrap_err();
        assert!(err.field.starts_with("guide"), "{err:?}");
    }

    #[test]
    fn follow_up_steps_are_read() {
        let p = follow_up(
            12,
            &json!({"step": "visited", "note": "电话回访"}),
            "王科长",
        )
        .unwrap();
        let m = p.message("f", None);
        assert_eq!(
            (m["ticket"].clone(), m["by"].clone()),
            (json!(12), json!("王科长"))
        );
        assert_eq!(recorded(&p.body()), Some(p));
        assert_eq!(
            follow_up(1, &json!({"step": "done"}), "x").map_err(|e| e.field),
            Err("step".to_string())
        );
        assert_eq!(
            follow_up(1, &json!({"step": "closed", "note": "x".repeat(501)}), "x")
                .map_err(|e| e.field),
            Err("note".to_string())
        );
    }
}
