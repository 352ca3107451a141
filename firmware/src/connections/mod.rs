//! The HTTP server's own accept loop, with the limits that keep the controller answering
//! tickets whatever clients do with their sockets:
//!
//! - a cap on open connections, in all and per client address, and on live streams (SSE),
//!   in all and per client address; a connection beyond a cap gets at once a short
//!   `503 {"error":{"code":"too_many_connections",…}}` with `Retry-After` and is closed,
//!   a stream beyond one `503 too_many_streams`;
//! - a header-read timeout (slowloris): a request's head must arrive whole within
//!   `header_timeout_secs` of its first byte;
//! - an idle timeout: a connection with no request in it and nothing arriving for
//!   `idle_timeout_secs` is closed (a fresh socket that never sends, a kept-alive one
//!   between requests), and so is one whose client stops reading what it asked for;
//! - reserve descriptors: no connection is kept while fewer than `reserve_fds` file
//!   descriptors are free, so that SQLite, the printer and the buses always get one.
//!
//! Requests reach the router with `ConnectInfo<SocketAddr>`, as under `axum::serve`.

mod fds;
mod watch;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

pub use fds::raise_open_file_limit;

/// `[server.limits]`: the caps and timeouts of the HTTP server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open connections in all (live streams included).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Live streams (`/api/v1/stream`) in all.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Live streams from one client address.
    #[serde(default = "default_max_streams_per_client")]
    pub max_streams_per_client: usize,
    /// Seconds a request's head may take to arrive, from its first byte.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may sit with no request and nothing arriving, or with its
    /// client not reading what it asked for.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// File descriptors kept free for the database, the printer and the buses.
    #[serde(default = "default_reserve_fds")]
    pub reserve_fds: usize,
    /// At most this many missed events are replayed to a stream that resumes; beyond
    /// it the stream starts with the current picture (`resync`) instead.
    #[serde(default = "default_stream_replay")]
    pub stream_replay: usize,
}

fn default_max_connections() -> usize {
    1000
}
fn default_max_connections_per_client() -> usize {
    64
}
fn default_max_streams() -> usize {
    800
}
fn default_max_streams_per_client() -> usize {
    16
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_reserve_fds() -> usize {
    64
}
fn default_stream_replay() -> usize {
    1000
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            max_streams: default_max_streams(),
            max_streams_per_client: default_max_streams_per_client(),
            header_timeout_secs: default_header_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            reserve_fds: default_reserve_fds(),
            stream_replay: default_stream_replay(),
        }
    }
}

/// Descriptors the daemon holds besides its connections and the reserve: the database
/// and its WAL, the auth connection, logs, the runtime's own, devices, the uplink.
pub const OWN_FILES: u64 = 128;

impl Limits {
    /// The key (under `server.limits`) and what is wrong, for the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("server.limits.max_connections", self.max_connections),
            (
                "server.limits.max_connections_per_client",
                self.max_connections_per_client,
            ),
            ("server.limits.max_streams", self.max_streams),
            (
                "server.limits.max_streams_per_client",
                self.max_streams_per_client,
            ),
            ("server.limits.stream_replay", self.stream_replay),
        ];
        for (key, v) in at_least_one {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.max_connections > 100_000 {
            return Err((
                "server.limits.max_connections",
                "must be at most 100000".into(),
            ));
        }
        if self.max_connections_per_client > self.max_connections {
            return Err((
                "server.limits.max_connections_per_client",
                format!("must not exceed max_connections ({})", self.max_connections),
            ));
        }
        if self.max_streams > self.max_connections {
            return Err((
                "server.limits.max_streams",
                format!(
                    "must not exceed max_connections ({}): every stream is a connection",
                    self.max_connections
                ),
            ));
        }
        if self.max_streams_per_client > self.max_streams {
            return Err((
                "server.limits.max_streams_per_client",
                format!("must not exceed max_streams ({})", self.max_streams),
            ));
        }
        if !(1..=300).contains(&self.header_timeout_secs) {
            return Err((
                "server.limits.header_timeout_secs",
                "must be between 1 and 300".into(),
            ));
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err((
                "server.limits.idle_timeout_secs",
                "must be between 1 and 3600".into(),
            ));
        }
        if !(16..=10_000).contains(&self.reserve_fds) {
            return Err((
                "server.limits.reserve_fds",
                "must be between 16 and 10000".into(),
            ));
        }
        Ok(())
    }

    /// The open-file limit these caps need: every connection, the reserve and
    /// [`OWN_FILES`].
    pub fn files_needed(&self) -> u64 {
        self.max_connections as u64 + self.reserve_fds as u64 + OWN_FILES
    }

    fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// Why a connection or a stream was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cap in all is reached.
    Total = 0,
    /// This client address has its share.
    Client = 1,
    /// Fewer than the reserve of file descriptors are free.
    Descriptors = 2,
}

impl Refusal {
    const ALL: [Refusal; 3] = [Refusal::Total, Refusal::Client, Refusal::Descriptors];

    /// The `/metrics` label.
    fn label(self) -> &'static str {
        match self {
            Refusal::Total => "cap",
            Refusal::Client => "client_cap",
            Refusal::Descriptors => "reserve_fds",
        }
    }
}

/// Open things counted in all and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    per: HashMap<IpAddr, usize>,
}

impl Counts {
    fn take(&mut self, ip: IpAddr, total: usize, per: usize) -> Result<(), Refusal> {
        if self.total >= total {
            return Err(Refusal::Total);
        }
        let mine = self.per.entry(ip).or_default();
        if *mine >= per {
            return Err(Refusal::Client);
        }
        *mine += 1;
        self.total += 1;
        Ok(())
    }

    fn give(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per.remove(&ip);
            }
        }
    }
}

/// The counters every connection and stream is admitted through.
pub struct Gate {
    limits: Limits,
    connections: Mutex<Counts>,
    streams: Mutex<Counts>,
    files: fds::Budget,
    /// Connections refused, by [`Refusal`].
    refused: [AtomicU64; 3],
    /// Streams refused.
    streams_refused: AtomicU64,
    /// Connections closed by their watchdog, by [`watch::Overdue`].
    cut: [AtomicU64; 3],
}

impl Gate {
    /// A gate for these limits, with the process's open-file limit as it is now.
    pub fn new(limits: Limits) -> Arc<Gate> {
        let files = fds::Budget::new(limits.reserve_fds as u64);
        Arc::new(Gate {
            limits,
            connections: Mutex::default(),
            streams: Mutex::default(),
            files,
            refused: Default::default(),
            streams_refused: AtomicU64::new(0),
            cut: Default::default(),
        })
    }

    /// Open connections now (streams included).
    pub fn connections(&self) -> usize {
        lock(&self.connections).total
    }

    /// Open streams now.
    pub fn streams(&self) -> usize {
        lock(&self.streams).total
    }

    fn admit(self: &Arc<Gate>, ip: IpAddr) -> Result<Held, Refusal> {
        let mut c = lock(&self.connections);
        let open = c.total as u64;
        let taken = if self.files.may_open(open) {
            c.take(
                ip,
                self.limits.max_connections,
                self.limits.max_connections_per_client,
            )
        } else {
            Err(Refusal::Descriptors)
        };
        if let Err(why) = taken {
            self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
            return Err(why);
        }
        Ok(Held {
            gate: self.clone(),
            ip,
            stream: false,
        })
    }

    fn open_stream(self: &Arc<Gate>, ip: IpAddr) -> Result<Held, Refusal> {
        lock(&self.streams)
            .take(
                ip,
                self.limits.max_streams,
                self.limits.max_streams_per_client,
            )
            .inspect_err(|_| {
                self.streams_refused.fetch_add(1, Ordering::Relaxed);
            })?;
        Ok(Held {
            gate: self.clone(),
            ip,
            stream: true,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection or stream slot, given back on drop.
struct Held {
    gate: Arc<Gate>,
    ip: IpAddr,
    stream: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        let counts = if self.stream {
            &self.gate.streams
        } else {
            &self.gate.connections
        };
        lock(counts).give(self.ip);
    }
}

/// The client a request came from, as the connection knows it (a request extension).
#[derive(Clone)]
struct Client {
    gate: Arc<Gate>,
    ip: IpAddr,
}

/// A live stream's slot, held for as long as the stream runs. A handler that takes it
/// as an extractor is refused with `503 too_many_streams` beyond the caps. Requests
/// that did not come through [`serve`] (the router called directly) hold no slot.
pub struct StreamSlot(#[allow(dead_code)] Option<Held>);

impl<S: Send + Sync> FromRequestParts<S> for StreamSlot {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let Some(client) = parts.extensions.get::<Client>() else {
            return Ok(StreamSlot(None));
        };
        match client.gate.open_stream(client.ip) {
            Ok(held) => Ok(StreamSlot(Some(held))),
            Err(why) => {
                tracing::info!(client = %client.ip, ?why, "live stream refused");
                let l = &client.gate.limits;
                let message = match why {
                    Refusal::Client => format!(
                        "this client already has {} live streams open; close one first",
                        l.max_streams_per_client
                    ),
                    _ => format!(
                        "the controller already serves {} live streams; try again later",
                        l.max_streams
                    ),
                };
                let body = error_body("too_many_streams", &message);
                Err((
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    [
                        (axum::http::header::CONTENT_TYPE, "application/json"),
                        (axum::http::header::RETRY_AFTER, "5"),
                    ],
                    body,
                )
                    .into_response())
            }
        }
    }
}

/// The server's connection figures for `/metrics` (none when the router is called
/// directly, without [`serve`]).
pub struct ServerGauges(Option<Arc<Gate>>);

impl<S: Send + Sync> FromRequestParts<S> for ServerGauges {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ServerGauges(
            parts.extensions.get::<Client>().map(|c| c.gate.clone()),
        ))
    }
}

impl ServerGauges {
    /// Appends the open connections and streams, and what was refused or cut off.
    pub fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let Some(g) = &self.0 else { return };
        let one = |v: usize| [(String::new(), v as f64)];
        crate::metrics::gauge(
            out,
            "hallq_http_connections",
            "Open HTTP connections (streams included).",
            one(g.connections()),
        );
        crate::metrics::gauge(
            out,
            "hallq_http_streams",
            "Open live streams (/api/v1/stream).",
            one(g.streams()),
        );
        let _ = writeln!(
            out,
            "# HELP hallq_http_connections_refused_total Connections answered 503 at accept, by reason.\n# TYPE hallq_http_connections_refused_total counter"
        );
        for r in Refusal::ALL {
            let n = g.refused[r as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hallq_http_connections_refused_total{{reason=\"{}\"}} {n}",
                r.label()
            );
        }
        let _ = writeln!(
            out,
            "# HELP hallq_http_streams_refused_total Live streams answered 503 too_many_streams.\n# TYPE hallq_http_streams_refused_total counter\nhallq_http_streams_refused_total {}",
            g.streams_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hallq_http_connections_closed_total Connections closed by the server's timeouts, by reason.\n# TYPE hallq_http_connections_closed_total counter"
        );
        for w in watch::Overdue::ALL {
            let n = g.cut[w as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hallq_http_connections_closed_total{{reason=\"{}\"}} {n}",
                w.label()
            );
        }
    }
}

/// `{"error":{"code","message"}}`, the API's error shape.
fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// The whole answer to a connection turned away at accept.
fn refusal_response(why: Refusal, limits: &Limits) -> Vec<u8> {
    let message = match why {
        Refusal::Total => format!(
            "the controller already has {} connections open; try again shortly",
            limits.max_connections
        ),
        Refusal::Client => format!(
            "this client already has {} connections open; close some and try again",
            limits.max_connections_per_client
        ),
        Refusal::Descriptors => {
            "the controller is short of file descriptors; try again shortly".to_string()
        }
    };
    let body = error_body("too_many_connections", &message);
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How many refused connections at most wait at once for their client to read the 503
/// before they close; beyond it they are answered and closed at once.
const LINGERING: usize = 64;
/// How long a refused connection waits for its client to finish sending.
const LINGER: Duration = Duration::from_millis(500);
/// How long a refused connection's answer may take to be written.
const ANSWER: Duration = Duration::from_millis(200);
/// The pause after an accept error (out of descriptors, say) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Answers a refused connection: the 503 at once, then (while few others do) a short
/// wait for the client's request to arrive so that closing does not reset the answer.
async fn refuse(
    mut stream: TcpStream,
    answer: Vec<u8>,
    linger: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // Awaited, not `try_write`: a socket just accepted is not known writable until the
    // reactor has seen it. The answer fits the socket's buffer, so this is one turn.
    let _ = tokio::time::timeout(ANSWER, stream.write_all(&answer)).await;
    let Some(_permit) = linger else { return };
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 2048];
        let mut read = 0usize;
        while let Ok(n) = stream.read(&mut buf).await {
            read += n;
            if n == 0 || read > 64 * 1024 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Serves `router` on `listener` until `stop` resolves; then stops accepting, asks every
/// connection to finish its request and close, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Arc<Gate>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let lingering = Arc::new(Semaphore::new(LINGERING));
    let mut stop = pin!(stop);
    let mut quiet_until = tokio::time::Instant::now();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => break,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or memory: pause rather than spin.
                let now = tokio::time::Instant::now();
                if now >= quiet_until {
                    tracing::warn!(error = %e, "cannot accept connections; pausing");
                    quiet_until = now + Duration::from_secs(10);
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let ip = addr.ip().to_canonical();
        match gate.admit(ip) {
            Ok(held) => {
                let conn = Conn {
                    held,
                    addr,
                    client: Client {
                        gate: gate.clone(),
                        ip,
                    },
                    router: router.clone(),
                    stopping: stopping_rx.clone(),
                    _open: open_tx.clone(),
                };
                tokio::spawn(conn.run(stream));
            }
            Err(why) => {
                tracing::debug!(client = %ip, ?why, "connection refused");
                let answer = refusal_response(why, &gate.limits);
                let linger = match why {
                    Refusal::Descriptors => None,
                    _ => lingering.clone().try_acquire_owned().ok(),
                };
                tokio::spawn(refuse(stream, answer, linger));
            }
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(open_tx);
    // Every connection task holds a sender; `None` once the last has ended.
    let _ = open_rx.recv().await;
    Ok(())
}

/// One admitted connection.
struct Conn {
    held: Held,
    addr: SocketAddr,
    client: Client,
    router: Router,
    stopping: tokio::sync::watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
}

impl Conn {
    async fn run(self, stream: TcpStream) {
        let Conn {
            held,
            addr,
            client,
            router,
            mut stopping,
            _open,
        } = self;
        let gate = client.gate.clone();
        let limits = gate.limits.clone();
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(watch::Activity::new());
        let io = hyper_util::rt::TokioIo::new(watch::Watched::new(stream, activity.clone()));
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                req.extensions_mut().insert(client.clone());
                let busy = watch::Busy::start(activity.clone());
                let router = router.clone();
                async move {
                    use tower::ServiceExt;
                    let resp = router.oneshot(req).await;
                    resp.map(|r| {
                        r.map(|body| axum::body::Body::new(watch::Guarded::new(body, busy)))
                    })
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(true)
            .header_read_timeout(None::<Duration>);
        let mut conn = pin!(builder.serve_connection(io, service));
        let tick = (limits.header_timeout().min(limits.idle_timeout()) / 5)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asked_to_close = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "connection ended");
                    }
                    break;
                }
                _ = every.tick() => {
                    if let Some(why) = activity.overdue(&limits) {
                        tracing::debug!(client = %addr, why = why.label(), "closing connection");
                        gate.cut[why as usize].fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                _ = stopping.wait_for(|s| *s), if !asked_to_close => {
                    asked_to_close = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_client_and_give_back() {
        let mut c = Counts::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(c.take(a, 3, 2), Ok(()));
        assert_eq!(c.take(a, 3, 2), Ok(()));
        assert_eq!(c.take(a, 3, 2), Err(Refusal::Client));
        assert_eq!(c.take(b, 3, 2), Ok(()));
        assert_eq!(c.take(b, 3, 2), Err(Refusal::Total));
        c.give(a);
        assert_eq!(c.take(b, 3, 2), Ok(()));
        c.give(a);
        c.give(b);
        c.give(b);
        assert_eq!((c.total, c.per.len()), (0, 0));
    }

    #[test]
    fn a_refused_connection_is_answered_503_in_the_apis_error_shape() {
        let text =
            String::from_utf8(refusal_response(Refusal::Client, &Limits::default())).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text.contains("retry-after: 1\r\n"), "{text}");
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "too_many_connections");
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, text.split("\r\n\r\n").nth(1).unwrap().len());
    }

    #[test]
    fn a_bad_limit_in_the_file_names_its_key_and_line() {
        let text = crate::config::EXAMPLE_HALL.replacen(
            "[server]\n",
            "[server]\nlimits.max_streams = 5000\n",
            1,
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("limits.max_streams"))
            .unwrap()
            + 1;
        let e = crate::config::Config::parse(&text, "hall.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("hall.toml:{line}: server.limits.max_streams: ")),
            "{e}"
        );
        let text = crate::config::EXAMPLE_HALL.replacen(
            "[server]\n",
            "[server]\nlimits.idle_timeout = 5\n",
            1,
        );
        let e = crate::config::Config::parse(&text, "hall.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.limits"), "{e}");
        assert!(e.contains("idle_timeout"), "{e}");
    }

    #[test]
    fn the_units_open_file_limit_covers_the_default_caps_and_reserve() {
        let unit = include_str!("../../packaging/hallq.service");
        let limit: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .expect("hallq.service sets LimitNOFILE")
            .trim()
            .parse()
            .unwrap();
        assert!(
            limit >= Limits::default().files_needed(),
            "LimitNOFILE={limit} < {}",
            Limits::default().files_needed()
        );
    }

    #[test]
    fn limits_that_contradict_each_other_name_their_key() {
        let ok = Limits::default();
        assert_eq!(ok.check(), Ok(()));
        let bad = Limits {
            max_streams: ok.max_connections + 1,
            ..ok.clone()
        };
        assert_eq!(bad.check().unwrap_err().0, "server.limits.max_streams");
        let bad = Limits {
            header_timeout_secs: 0,
            ..ok.clone()
        };
        assert_eq!(
            bad.check().unwrap_err().0,
            "server.limits.header_timeout_secs"
        );
        let bad = Limits {
            max_connections_per_client: 0,
            ..ok
        };
        assert_eq!(
            bad.check().unwrap_err().0,
            "server.limits.max_connections_per_client"
        );
    }
}
