//! What a connection is doing, as its socket and its requests show it: waiting with no
//! request (idle), receiving a request's head, or working on requests; and whether its
//! client has stopped reading. [`Activity::overdue`] says when it has been so too long.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Limits;

/// Why a connection is closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overdue {
    /// No request and nothing arriving for the idle timeout.
    Idle = 0,
    /// A request's head not complete within the header timeout of its first byte.
    Head = 1,
    /// The client has not read its answer for the idle timeout.
    NotReading = 2,
}

impl Overdue {
    pub(super) const ALL: [Overdue; 3] = [Overdue::Idle, Overdue::Head, Overdue::NotReading];

    /// The `/metrics` label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Overdue::Idle => "idle",
            Overdue::Head => "header_timeout",
            Overdue::NotReading => "not_reading",
        }
    }
}

/// One connection's state, shared by its socket wrapper, its requests and its watchdog.
pub(super) struct Activity(Mutex<State>);

struct State {
    /// Requests being worked on (their answer not yet fully sent).
    busy: u32,
    /// With no request: since when (`head` is `None`) or since the first byte of the
    /// next request's head (`head` is `Some`).
    idle_since: Instant,
    head: Option<Instant>,
    /// Since when a write has been waiting for the client to read.
    write_blocked: Option<Instant>,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity(Mutex::new(State {
            busy: 0,
            idle_since: Instant::now(),
            head: None,
            write_blocked: None,
        }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn read(&self, n: usize) {
        if n > 0 {
            self.with(|s| {
                if s.busy == 0 && s.head.is_none() {
                    s.head = Some(Instant::now());
                }
            });
        }
    }

    fn wrote(&self, pending: bool) {
        self.with(|s| {
            if pending {
                s.write_blocked.get_or_insert_with(Instant::now);
            } else {
                s.write_blocked = None;
            }
        });
    }

    /// Why the connection should close now, if it should.
    pub(super) fn overdue(&self, limits: &Limits) -> Option<Overdue> {
        let now = Instant::now();
        self.with(|s| {
            if s.busy > 0 {
                let blocked = s.write_blocked?;
                return (now - blocked >= limits.idle_timeout()).then_some(Overdue::NotReading);
            }
            match s.head {
                Some(since) => (now - since >= limits.header_timeout()).then_some(Overdue::Head),
                None => (now - s.idle_since >= limits.idle_timeout()).then_some(Overdue::Idle),
            }
        })
    }
}

/// A request being worked on, until its answer has been sent (or given up).
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn start(activity: Arc<Activity>) -> Busy {
        activity.with(|s| {
            s.busy += 1;
            s.head = None;
        });
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.busy = s.busy.saturating_sub(1);
            if s.busy == 0 {
                s.idle_since = Instant::now();
                s.head = None;
                s.write_blocked = None;
            }
        });
    }
}

/// An answer's body that ends its request's [`Busy`] when it is dropped (sent or not).
pub(super) struct Guarded {
    body: axum::body::Body,
    _busy: Busy,
}

impl Guarded {
    pub(super) fn new(body: axum::body::Body, busy: Busy) -> Guarded {
        Guarded { body, _busy: busy }
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket that reports what it reads and whether its writes wait.
pub(super) struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub(super) fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.activity.read(buf.filled().len() - before);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.activity.wrote(r.is_pending());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.activity.wrote(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.activity.wrote(r.is_pending());
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(header: u64, idle: u64) -> Limits {
        Limits {
            header_timeout_secs: header,
            idle_timeout_secs: idle,
            ..Limits::default()
        }
    }

    fn backdate(a: &Activity, by: Duration) {
        a.with(|s| {
            s.idle_since -= by;
            s.head = s.head.map(|h| h - by);
            s.write_blocked = s.write_blocked.map(|w| w - by);
        });
    }

    #[test]
    fn a_silent_connection_is_idle_and_a_slow_head_times_out_sooner() {
        let a = Activity::new();
        backdate(&a, Duration::from_secs(5));
        assert_eq!(a.overdue(&limits(3, 10)), None);
        backdate(&a, Duration::from_secs(5));
        assert_eq!(a.overdue(&limits(3, 10)), Some(Overdue::Idle));

        let a = Activity::new();
        a.read(5);
        backdate(&a, Duration::from_secs(4));
        assert_eq!(a.overdue(&limits(3, 10)), Some(Overdue::Head));
    }

    #[test]
    fn a_request_in_progress_is_never_idle_unless_its_client_stops_reading() {
        let a = Arc::new(Activity::new());
        a.read(5);
        let busy = Busy::start(a.clone());
        backdate(&a, Duration::from_secs(100));
        assert_eq!(a.overdue(&limits(3, 10)), None);
        a.wrote(true);
        backdate(&a, Duration::from_secs(11));
        assert_eq!(a.overdue(&limits(3, 10)), Some(Overdue::NotReading));
        a.wrote(false);
        assert_eq!(a.overdue(&limits(3, 10)), None);
        drop(busy);
        assert_eq!(a.overdue(&limits(3, 10)), None);
        backdate(&a, Duration::from_secs(11));
        assert_eq!(a.overdue(&limits(3, 10)), Some(Overdue::Idle));
    }
}
