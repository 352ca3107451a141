//! The SMS webhook: the controllers' near-turn text messages (topic `…/sms`, see
//! `docs/events.md`) to the SMS provider's HTTP endpoint.
//!
//! The ingest stores each message once by id, in the batch's transaction, before the
//! broker has its acknowledgement ([`crate::db::store`]). Every instance runs a sender:
//! it claims due messages with a lease (`FOR UPDATE SKIP LOCKED`, then `lease_until`
//! set longer than a POST may take), so two instances never post the same message at
//! once; it POSTs each as JSON (the message and its ready `text`, as
//! `hallq receive --sms-webhook` does) and retries with a doubling wait until one POST
//! is answered 2xx. Then the mobile number is erased from the row; the row itself stays
//! a week, so a message sent again with the same id is not posted again. A message not
//! posted `max_age_minutes` after its `near_turn` is erased too and counted as expired:
//! the citizen's turn has passed. The number goes nowhere else: not in a log line, a
//! metric, the events table or a rejected message.

use std::sync::Arc;
use std::time::Duration;

use hallq::uplink::receive::sms_text;
use hallq::uplink::wire::SmsMessage;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::config::Sms;
use crate::db::DbError;
use crate::metrics::Metrics;

/// Messages claimed at once.
const CLAIM: i64 = 16;
/// Rows whose number is erased are kept this long (ms), against a late resend.
const KEEP_MS: i64 = 7 * 24 * 3_600_000;

/// Reads a message from the `sms` topic of `hall`/`controller`. The reasons never
/// quote the body, which holds a mobile number.
pub fn read_sms(hall: &str, controller: &str, body: &[u8]) -> Result<SmsMessage, String> {
    let m: SmsMessage = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a text message ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if m.hall_id != hall || m.controller_id != controller {
        return Err(format!(
            "names {}/{} but came on {hall}/{controller}",
            m.hall_id, m.controller_id
        ));
    }
    if m.id.is_empty() || m.id.len() > 64 {
        return Err("id is empty or longer than 64".into());
    }
    if m.mobile.len() != 11
        || !m.mobile.starts_with('1')
        || !m.mobile.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("mobile is not an 11-digit mainland number".into());
    }
    Ok(m)
}

/// The JSON posted for a message: the message, and its text.
pub fn body(m: &SmsMessage) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    v["text"] = Value::String(sms_text(m));
    v
}

/// The wait before the retry after `attempts` failed POSTs.
pub fn backoff(sms: &Sms, attempts: i32) -> Duration {
    let doublings = attempts.clamp(1, 20) as u32 - 1;
    let ms = sms.retry_min_ms.saturating_mul(1u64 << doublings);
    Duration::from_millis(ms.min(sms.retry_max_ms))
}

/// One instance's sender.
pub struct Sender {
    /// `[sms]`.
    pub config: Sms,
    /// This instance (the lease's holder).
    pub instance: String,
    /// PostgreSQL.
    pub db_url: String,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Woken when the ingest has stored new messages.
    pub wake: Arc<Notify>,
}

/// A message claimed for posting.
struct Claimed {
    message: SmsMessage,
    attempts: i32,
}

impl Sender {
    /// Posts until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(self.config.timeout_ms)))
            .http_status_as_error(false)
            .build()
            .into();
        let poll = Duration::from_millis(self.config.retry_min_ms.clamp(10, 1000));
        let mut db: Option<Client> = None;
        let mut pruned_at = 0;
        let mut told = false;
        loop {
            if db.as_ref().is_none_or(Client::is_closed) {
                db = match crate::db::connect(&self.db_url, Duration::ZERO).await {
                    Ok(c) => {
                        told = false;
                        Some(c)
                    }
                    Err(e) => {
                        // Once per outage, not once per poll.
                        if !told {
                            tracing::warn!("SMS webhook: {e}; posting waits for the database");
                        }
                        told = true;
                        None
                    }
                };
            }
            let mut more = false;
            if let Some(c) = db.as_ref() {
                match self.round(c, &agent).await {
                    Ok(full) => more = full,
                    Err(e) => tracing::warn!("SMS webhook: {e}"),
                }
                let now = crate::now_ms();
                if now - pruned_at > 60_000 {
                    pruned_at = now;
                    if let Err(e) = prune(c, now).await {
                        tracing::warn!("SMS webhook: pruning: {e}");
                    }
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Expires, claims, posts; `true` when it claimed a full batch (more may be due).
    async fn round(&self, db: &Client, agent: &ureq::Agent) -> Result<bool, DbError> {
        let now = crate::now_ms();
        let expired = expire(db, now, self.config.max_age_minutes).await?;
        if expired > 0 {
            self.metrics.sms_expired(expired);
            tracing::warn!("SMS webhook: {expired} message(s) not posted in time, dropped");
        }
        let lease = self.config.timeout_ms as i64 + 10_000;
        let oldest = now - (self.config.max_age_minutes as i64) * 60_000;
        let claimed = claim(db, &self.instance, now, lease, oldest).await?;
        let full = claimed.len() as i64 == CLAIM;
        for c in claimed {
            let id = c.message.id.clone();
            let outcome = self.post(agent, c.message).await;
            match outcome {
                Ok(()) => {
                    db.execute(
                        "UPDATE sms SET mobile = NULL, state = 'posted', posted_at = $2,
                                lease_until = NULL, last_error = NULL
                         WHERE id = $1",
                        &[&id, &crate::now_ms()],
                    )
                    .await?;
                    self.metrics.sms_posted();
                    tracing::info!(sms = %id, attempts = c.attempts, "text message posted");
                }
                Err(why) => {
                    let wait = backoff(&self.config, c.attempts);
                    let next = crate::now_ms() + wait.as_millis() as i64;
                    db.execute(
                        "UPDATE sms SET next_at = $2, lease_until = NULL, last_error = $3
                         WHERE id = $1",
                        &[&id, &next, &why],
                    )
                    .await?;
                    self.metrics.sms_retry();
                    tracing::warn!(sms = %id, attempts = c.attempts, "SMS webhook: {why}; again in {wait:?}");
                }
            }
        }
        let pending: i64 = db
            .query_one("SELECT count(*) FROM sms WHERE mobile IS NOT NULL", &[])
            .await?
            .get(0);
        self.metrics.set_sms_pending(pending.max(0) as u64);
        Ok(full)
    }

    /// One POST; `Err` with why it did not take (never with the number).
    async fn post(&self, agent: &ureq::Agent, m: SmsMessage) -> Result<(), String> {
        let (agent, url, token) = (
            agent.clone(),
            self.config.webhook_url.clone(),
            self.config.token.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut req = agent.post(&url);
            if let Some(t) = &token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            match req.send_json(body(&m)) {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(format!("the post's task failed: {e}")))
    }
}

/// Erases the numbers of messages older than `max_age_minutes` (by their `near_turn`)
/// that are not being posted; returns how many.
pub async fn expire(db: &Client, now: i64, max_age_minutes: u64) -> Result<u64, DbError> {
    let before = now - (max_age_minutes as i64) * 60_000;
    Ok(db
        .execute(
            "UPDATE sms SET mobile = NULL, state = 'expired'
             WHERE mobile IS NOT NULL AND at < $1 AND (lease_until IS NULL OR lease_until < $2)",
            &[&before, &now],
        )
        .await?)
}

/// Claims the due messages for `instance` until `now + lease_ms`: the rows are locked
/// while claimed (`SKIP LOCKED`: another instance takes others), then held by the
/// lease. A message from before `oldest` is left to [`expire`], never posted.
async fn claim(
    db: &Client,
    instance: &str,
    now: i64,
    lease_ms: i64,
    oldest: i64,
) -> Result<Vec<Claimed>, DbError> {
    let rows = db
        .query(
            "UPDATE sms SET lease_until = $2 + $3, lease_by = $1, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM sms
                 WHERE mobile IS NOT NULL AND next_at <= $2 AND at >= $5
                   AND (lease_until IS NULL OR lease_until < $2)
                 ORDER BY next_at, id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, controller_id, hall_id, at, time, mobile, near_turn, attempts",
            &[&instance, &now, &lease_ms, &CLAIM, &oldest],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Claimed {
                message: SmsMessage {
                    id: r.get(0),
                    controller_id: r.get(1),
                    hall_id: r.get(2),
                    at: r.get(3),
                    time: r.get(4),
                    mobile: r.get::<_, Option<String>>(5)?,
                    near_turn: r.get::<_, Json<Value>>(6).0,
                },
                attempts: r.get(7),
            })
        })
        .collect())
}

/// Removes the rows whose number is gone and that are older than a week.
async fn prune(db: &Client, now: i64) -> Result<u64, DbError> {
    Ok(db
        .execute(
            "DELETE FROM sms WHERE mobile IS NULL AND received_at < $1",
            &[&(now - KEEP_MS)],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Sms {
        Sms {
            webhook_url: "http://127.0.0.1:9/sms".into(),
            token: None,
            timeout_ms: 1000,
            retry_min_ms: 200,
            retry_max_ms: 1000,
            max_age_minutes: 30,
        }
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_the_limit() {
        let c = config();
        let waits: Vec<u128> = (1..=5).map(|a| backoff(&c, a).as_millis()).collect();
        assert_eq!(waits, vec![200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&c, 1000).as_millis(), 1000);
    }

    #[test]
    fn a_message_must_name_its_topic_and_reasons_never_quote_the_number() {
        let m = serde_json::json!({"id": "e1", "controller_id": "c", "hall_id": "h", "at": 1,
            "time": "t", "mobile": "13812345678", "near_turn": {"number": "A007", "ahead": 3, "minutes": 9}});
        let ok = read_sms("h", "c", m.to_string().as_bytes()).expect("reads");
        assert_eq!(
            body(&ok)["text"],
            "您的A007号前面还有3人，预计约9分钟后叫号，请回到大厅留意叫号。"
        );
        assert!(
            read_sms("h", "x", m.to_string().as_bytes())
                .unwrap_err()
                .contains("came on h/x")
        );
        for bad in [
            m.to_string().replace("13812345678", "1381234567"),
            m.to_string().replace("\"13812345678\"", "13812345678"),
            m.to_string().replace("13812345678", "2381234567x"),
        ] {
            let why = read_sms("h", "c", bad.as_bytes()).unwrap_err();
            assert!(!why.contains("1381234567"), "{why}");
            assert!(!why.contains("2381234567"), "{why}");
        }
    }
}
