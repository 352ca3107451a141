//! The kiosk's client of the controller's local API (`docs/api.md`). Every call has a
//! timeout, so a slow controller shows as "unreachable" on screen instead of a frozen
//! kiosk; calls run on worker threads, never on the UI thread.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalogue::{Guide, Language, Overview, Service, Ticket};

/// Why a call to the controller did not give an answer we can use.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: refused connection, timeout, broken stream. Worth retrying.
    #[error("the controller cannot be reached: {0}")]
    Unreachable(String),
    /// The controller answered with an error meant for the citizen.
    #[error("{code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Machine code (`closed`, `unknown_appointment`, …).
        code: String,
        /// Text in the requested language.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the controller: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether asking again (with the same idempotency key) may help.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            ClientError::Refused { status, .. } => *status == 503,
            ClientError::Protocol(_) => false,
        }
    }
}

/// How the kiosk reaches its controller.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// Sent as `X-Kiosk-Id`, recorded on tickets as the channel.
    pub kiosk_id: String,
    /// Sent as `X-Kiosk-Key` when the kiosk is not on the controller's machine.
    pub kiosk_key: Option<String>,
    /// Longest wait for one answer.
    pub timeout: Duration,
}

/// A blocking API client; cheap to clone, one per worker thread.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

/// The answer to a checklist print request.
#[derive(Debug, Clone, Deserialize)]
pub struct ChecklistAnswer {
    /// `printing` when handed to the printer, `unavailable` when no printer can take it.
    pub printer: String,
}

#[derive(Deserialize)]
struct TicketAnswer {
    ticket: Ticket,
    #[serde(default)]
    print: Option<PrintState>,
    #[serde(default)]
    token: Option<String>,
}

/// A ticket just issued or checked in, as the kiosk keeps it while it is on screen.
pub struct Issued {
    /// The ticket.
    pub ticket: Ticket,
    /// `printing` when paper is coming, else `unavailable`; `None` when not said.
    pub printer: Option<String>,
    /// The ticket's secret for its citizen (`X-Ticket-Token`), for the near-turn notice;
    /// `None` from a controller that does not give one.
    pub token: Option<TicketToken>,
}

/// A ticket's secret (the `token` of the issue answer). It names the ticket to the
/// controller on the citizen's behalf, so it is never shown or logged: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketToken(String);

impl TicketToken {
    /// The token as given by the controller.
    pub fn new(token: impl Into<String>) -> TicketToken {
        TicketToken(token.into())
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TicketToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketToken(…)")
    }
}

/// What `GET /api/v1/kiosk` says about this kiosk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KioskState {
    /// The hall server's lock: `Some(reason)` while tickets are refused with 423.
    pub lock: Option<String>,
    /// The near-turn text message, when the hall offers it.
    pub notify: Option<NotifyOffer>,
}

/// The hall's near-turn text message (`notify` of `GET /api/v1/kiosk`): sent when this
/// many people are ahead, or the estimate falls to `minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct NotifyOffer {
    /// People ahead when the text goes.
    pub ahead: u32,
    /// Minutes of estimated wait when the text goes, if the hall sets it.
    #[serde(default)]
    pub minutes: Option<u32>,
}

/// A near-turn notice the controller took (`POST /api/v1/tickets/{id}/notice`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notice {
    /// Ticket id.
    pub ticket: u64,
    /// The number masked (`138****5678`): the only form the kiosk may show.
    pub mobile: String,
    /// People ahead now.
    #[serde(default)]
    pub ahead: u32,
    /// People ahead when the text goes.
    pub notify_ahead: u32,
    /// Minutes of estimated wait when the text goes, if set.
    #[serde(default)]
    pub notify_minutes: Option<u32>,
    /// Already sent: the turn was near when it was asked for.
    #[serde(default)]
    pub sent: bool,
}

/// The ID card on this kiosk's reader (`GET /api/v1/kiosk/card`), in the masked forms
/// only: the controller never gives the kiosk the name or the number, and the kiosk
/// never logs what it shows (`Debug` hides the masks too).
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
pub struct CardState {
    /// This kiosk has a reader.
    #[serde(default)]
    pub reader: bool,
    /// A card lies on it.
    #[serde(default)]
    pub present: bool,
    /// The name masked (`王*明`).
    #[serde(default)]
    pub name: Option<String>,
    /// The number masked (`110***********123X`).
    #[serde(default)]
    pub id: Option<String>,
    /// Age on the hall's date.
    #[serde(default)]
    pub age: Option<u32>,
    /// A ticket taken with the card is green (绿色通道).
    #[serde(default)]
    pub green: bool,
    /// The holder's appointment of today still to check in.
    #[serde(default)]
    pub appointment: Option<CardAppointment>,
    /// The holder's live tickets today.
    #[serde(default)]
    pub tickets: Vec<CardTicket>,
}

impl std::fmt::Debug for CardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardState")
            .field("reader", &self.reader)
            .field("present", &self.present)
            .field("green", &self.green)
            .finish_non_exhaustive()
    }
}

/// The card holder's appointment of today.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CardAppointment {
    /// Service code.
    pub service: String,
    /// Service names.
    #[serde(default)]
    pub service_name: Option<crate::catalogue::Names>,
    /// The slot's local time (`10:30`).
    #[serde(default)]
    pub slot_at_local: String,
}

/// One of the holder's live tickets: a second one of its service would be refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CardTicket {
    /// Printed number.
    pub number: String,
    /// Service code.
    pub service: String,
}

/// The printer's answer for a ticket: `printing`, `queued`, `unavailable`, `not_printed`.
#[derive(Deserialize)]
struct PrintState {
    state: String,
}

impl TicketAnswer {
    fn issued(self) -> Issued {
        let printer = self.print.as_ref().map(|p| match p.state.as_str() {
            "printing" | "queued" => "printing".to_string(),
            _ => "unavailable".to_string(),
        });
        Issued {
            ticket: self.ticket,
            printer,
            token: self.token.map(TicketToken),
        }
    }
}

impl Client {
    /// A client for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(endpoint.timeout))
            .timeout_connect(Some(endpoint.timeout.min(Duration::from_secs(2))))
            .build()
            .into();
        Client { endpoint, agent }
    }

    /// The endpoint in use.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base.trim_end_matches('/'))
    }

    fn headers<B>(&self, req: ureq::RequestBuilder<B>, lang: Language) -> ureq::RequestBuilder<B> {
        let req = req
            .header("Accept-Language", lang.tag())
            .header("X-Kiosk-Id", &self.endpoint.kiosk_id);
        match &self.endpoint.kiosk_key {
            Some(k) => req.header("X-Kiosk-Key", k),
            None => req,
        }
    }

    fn answer<T: DeserializeOwned>(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = resp.map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| ClientError::Unreachable(format!("reading the answer: {e}")))?;
        if (200..300).contains(&status) {
            serde_json::from_value(body).map_err(|e| ClientError::Protocol(e.to_string()))
        } else {
            let e: ErrorBody = serde_json::from_value(body).map_err(|_| {
                ClientError::Protocol(format!("status {status} without an error body"))
            })?;
            Err(ClientError::Refused {
                status,
                code: e.error.code,
                message: e.error.message,
            })
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, lang: Language) -> Result<T, ClientError> {
        Self::answer(self.headers(self.agent.get(self.url(path)), lang).call())
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        lang: Language,
        key: Option<&str>,
        body: Value,
    ) -> Result<T, ClientError> {
        let mut req = self.headers(self.agent.post(self.url(path)), lang);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Self::answer(req.send_json(body))
    }

    /// The service catalogue with each service's queue figures.
    pub fn services(&self) -> Result<Vec<Service>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            services: Vec<Service>,
        }
        Ok(self
            .get::<Answer>("/api/v1/services", Language::ZhCn)?
            .services)
    }

    /// The hall overview: windows and what they serve.
    pub fn overview(&self) -> Result<Overview, ClientError> {
        self.get("/api/v1/overview", Language::ZhCn)
    }

    /// The service guide of `code`.
    pub fn guide(&self, code: &str, lang: Language) -> Result<Guide, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            guide: Guide,
        }
        Ok(self
            .get::<Answer>(&format!("/api/v1/services/{}/guide", path_part(code)), lang)?
            .guide)
    }

    /// Asks the controller to print the material checklist of `code`.
    pub fn checklist(&self, code: &str, lang: Language) -> Result<ChecklistAnswer, ClientError> {
        self.post(
            &format!("/api/v1/services/{}/checklist", path_part(code)),
            lang,
            None,
            Value::Object(Default::default()),
        )
    }

    /// Takes a ticket; `key` makes a retry or a double tap return the same ticket.
    /// Answers the ticket, the printer state and the ticket's token.
    pub fn issue(&self, service: &str, key: &str, lang: Language) -> Result<Issued, ClientError> {
        let a: TicketAnswer = self.post(
            "/api/v1/tickets",
            lang,
            Some(key),
            serde_json::json!({ "service": service }),
        )?;
        Ok(a.issued())
    }

    /// The kiosk lock the hall server set through the uplink: `Some(reason)` while
    /// tickets are refused with 423 `kiosk_locked`, `None` when the kiosk may issue.
    pub fn lock(&self) -> Result<Option<String>, ClientError> {
        Ok(self.kiosk()?.lock)
    }

    /// The kiosk's lock and whether the hall offers near-turn text messages.
    pub fn kiosk(&self) -> Result<KioskState, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            locked: bool,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            notify: Option<NotifyOffer>,
        }
        let a: Answer = self.get("/api/v1/kiosk", Language::ZhCn)?;
        Ok(KioskState {
            lock: a.locked.then(|| a.message.unwrap_or_default()),
            notify: a.notify,
        })
    }

    /// Asks for a text message to `mobile` (11 digits) when the turn of `ticket` is
    /// near, on the citizen's behalf (`token`). Asking again replaces the number, until
    /// the text has gone (409 `notice_already_sent`). The number is in the body only,
    /// never in a URL, and this client logs nothing of it.
    pub fn notice(
        &self,
        ticket: u64,
        token: &TicketToken,
        mobile: &str,
        lang: Language,
    ) -> Result<Notice, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            notice: Notice,
        }
        let req = self
            .headers(
                self.agent
                    .post(self.url(&format!("/api/v1/tickets/{ticket}/notice"))),
                lang,
            )
            .header("X-Ticket-Token", token.as_str());
        let a: Answer = Self::answer(req.send_json(serde_json::json!({ "mobile": mobile })))?;
        Ok(a.notice)
    }

    /// Rings the help bell: the controller records a help request for this kiosk (one
    /// open request per kiosk) and speaks `help_coming`. Answers whether one was
    /// already open.
    pub fn help(&self, screen: &str, lang: Language) -> Result<bool, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            already_open: bool,
        }
        let a: Answer = self.post(
            "/api/v1/help",
            lang,
            None,
            serde_json::json!({ "screen": screen }),
        )?;
        Ok(a.already_open)
    }

    /// Asks the hall's voice to speak a kiosk prompt (elder mode), queued behind calls;
    /// `number` for the prompts that read a ticket number (`your_number`).
    pub fn prompt(&self, prompt: &str, number: Option<&str>) -> Result<(), ClientError> {
        let mut body = serde_json::json!({ "prompt": prompt });
        if let Some(n) = number {
            body["number"] = n.into();
        }
        let _: Value = self.post("/api/v1/voice/prompt", Language::ZhCn, None, body)?;
        Ok(())
    }

    /// The ID card on this kiosk's reader. A controller without the route (404) is a
    /// kiosk without a reader.
    pub fn card(&self) -> Result<CardState, ClientError> {
        match self.get("/api/v1/kiosk/card", Language::ZhCn) {
            Err(ClientError::Refused { status: 404, .. }) => Ok(CardState::default()),
            other => other,
        }
    }

    /// Takes a ticket of `service` as the holder of the card on this kiosk's reader
    /// (green when the holder is old enough; refused while the holder has a live
    /// ticket of the service).
    pub fn issue_with_card(
        &self,
        service: &str,
        key: &str,
        lang: Language,
    ) -> Result<Issued, ClientError> {
        let a: TicketAnswer = self.post(
            "/api/v1/tickets",
            lang,
            Some(key),
            serde_json::json!({ "service": service, "id_card": true }),
        )?;
        Ok(a.issued())
    }

    /// Checks in the card holder's appointment of today, found by the card.
    pub fn check_in_with_card(&self, key: &str, lang: Language) -> Result<Issued, ClientError> {
        let a: TicketAnswer = self.post(
            "/api/v1/tickets",
            lang,
            Some(key),
            serde_json::json!({ "id_card": true, "appointment": true }),
        )?;
        Ok(a.issued())
    }

    /// Checks an appointment in by its booking code.
    pub fn check_in(&self, code: &str, key: &str, lang: Language) -> Result<Issued, ClientError> {
        let a: TicketAnswer = self.post(
            &format!("/api/v1/appointments/{}/check-in", path_part(code)),
            lang,
            Some(key),
            Value::Object(Default::default()),
        )?;
        Ok(a.issued())
    }

    /// Follows the live event stream, calling `on_event` with each event until the
    /// stream ends or breaks, or `on_event` answers `false`. Returns why it ended.
    pub fn follow_events(&self, mut on_event: impl FnMut(&StreamEvent) -> bool) -> ClientError {
        // The stream sends a keep-alive every 15 s; 40 s of silence means it is gone.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_recv_body(None)
            .timeout_per_call(None)
            .timeout_global(None)
            .build()
            .into();
        let req = self.headers(agent.get(self.url("/api/v1/stream")), Language::ZhCn);
        let mut resp = match req.header("Accept", "text/event-stream").call() {
            Ok(r) => r,
            Err(e) => return ClientError::Unreachable(e.to_string()),
        };
        if resp.status().as_u16() != 200 {
            return ClientError::Protocol(format!("event stream answered {}", resp.status()));
        }
        let reader = BufReader::new(resp.body_mut().as_reader());
        let mut parser = SseParser::default();
        for line in reader.lines() {
            match line {
                Ok(l) => {
                    if let Some(event) = parser.line(&l)
                        && !on_event(&event)
                    {
                        return ClientError::Unreachable("stopped".into());
                    }
                }
                Err(e) => return ClientError::Unreachable(e.to_string()),
            }
        }
        ClientError::Unreachable("the event stream ended".into())
    }
}

/// One event of the live stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Its type (`ticket_issued`, `kiosk_locked`, …).
    pub name: String,
    /// Its JSON body: the stored event with its `payload`.
    pub data: String,
}

impl StreamEvent {
    /// What a `kiosk_locked` / `kiosk_unlocked` event says about the lock: `Some(Some(reason))`
    /// locked, `Some(None)` unlocked, `None` for any other event.
    pub fn lock_change(&self) -> Option<Option<String>> {
        match self.name.as_str() {
            "kiosk_locked" => {
                let body: Value = serde_json::from_str(&self.data).unwrap_or(Value::Null);
                Some(Some(
                    body["payload"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ))
            }
            "kiosk_unlocked" => Some(None),
            _ => None,
        }
    }
}

/// Folds Server-Sent Events lines into events: `event:` and `data:` lines up to a blank
/// line make one; comments (keep-alives) and ids are skipped.
#[derive(Default)]
struct SseParser {
    name: String,
    data: String,
}

impl SseParser {
    fn line(&mut self, line: &str) -> Option<StreamEvent> {
        if line.is_empty() {
            if self.name.is_empty() && self.data.is_empty() {
                return None;
            }
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            return Some(StreamEvent {
                name: if name.is_empty() {
                    "message".into()
                } else {
                    name
                },
                data,
            });
        }
        if let Some(v) = line.strip_prefix("event:") {
            self.name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
        None
    }
}

/// A path segment with anything but letters, digits, - and _ percent-encoded.
fn path_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_characters_in_a_path_are_encoded() {
        assert_eq!(path_part("SB"), "SB");
        assert_eq!(path_part("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn stream_lines_fold_into_events_and_lock_events_carry_their_reason() {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for l in [
            ": keep-alive",
            "",
            "id: 7",
            "event: kiosk_locked",
            r#"data: {"seq":7,"type":"kiosk_locked","payload":{"command_id":"c1","message":"系统维护"}}"#,
            "",
            "event: kiosk_unlocked",
            r#"data: {"seq":8,"type":"kiosk_unlocked","payload":{}}"#,
            "",
            "event: ticket_issued",
            "data: {}",
            "",
        ] {
            got.extend(p.line(l));
        }
        let names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["kiosk_locked", "kiosk_unlocked", "ticket_issued"]);
        assert_eq!(got[0].lock_change(), Some(Some("系统维护".to_string())));
        assert_eq!(got[1].lock_change(), Some(None));
        assert_eq!(got[2].lock_change(), None);
    }

    #[test]
    fn the_notice_answer_and_the_offer_read_as_documented_and_the_token_is_not_shown() {
        let n: Notice = serde_json::from_value(serde_json::json!({
            "ticket": 7, "mobile": "138****5678", "ahead": 5, "notify_ahead": 3,
            "notify_minutes": 10, "sent": false
        }))
        .unwrap();
        assert_eq!(
            (n.ticket, n.mobile.as_str(), n.notify_ahead),
            (7, "138****5678", 3)
        );
        let o: Option<NotifyOffer> =
            serde_json::from_value(serde_json::json!({"ahead": 3, "minutes": null})).unwrap();
        assert_eq!(
            o,
            Some(NotifyOffer {
                ahead: 3,
                minutes: None
            })
        );
        let t = TicketToken::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{t:?}"), "TicketToken(…)");
    }

    #[test]
    fn a_closed_port_is_unreachable_and_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = Client::new(Endpoint {
            base: format!("http://127.0.0.1:{port}"),
            kiosk_id: "k1".into(),
            kiosk_key: None,
            timeout: Duration::from_secs(1),
        });
        let e = c.services().unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e}");
        assert!(e.is_transient());
    }
}
