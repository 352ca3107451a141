//! Run a [`VirtualPrinter`] behind a real transport in a background thread: a TCP
//! listener (like a network printer on port 9100) or one end of a pseudo-terminal
//! (like a serial printer). The daemon's real transport code talks to it unchanged.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{DecodeStats, Paper, PrinterState, VirtualPrinter};

/// How often the background thread wakes to check for a stop request.
const POLL: Duration = Duration::from_millis(20);

/// Handle to a virtual printer running in its own thread. Dropping it stops the thread.
pub struct VirtualPrinterHandle {
    shared: Arc<Mutex<VirtualPrinter>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: Option<SocketAddr>,
}

fn lock(m: &Mutex<VirtualPrinter>) -> MutexGuard<'_, VirtualPrinter> {
    // A panic elsewhere must not take the simulator down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read from `stream` until stopped, feeding the printer and writing replies back.
/// Returns when the stream ends (EOF or a hard error) or on stop.
fn pump<S: Read + Write>(stream: &mut S, shared: &Mutex<VirtualPrinter>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let replies = lock(shared).feed(&buf[..n]);
                if !replies.is_empty() && stream.write_all(&replies).is_err() {
                    return;
                }
                let _ = stream.flush();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::debug!(error = %e, "virtual printer: stream ended");
                return;
            }
        }
    }
}

impl VirtualPrinterHandle {
    /// Accept connections on `listener` one at a time (as a real printer does) and
    /// print what they send. The listener is switched to non-blocking mode.
    pub fn serve_tcp(
        printer: VirtualPrinter,
        listener: TcpListener,
    ) -> std::io::Result<VirtualPrinterHandle> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(printer));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("virtual-printer-tcp".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if stream.set_nonblocking(false).is_err()
                                || stream.set_read_timeout(Some(POLL)).is_err()
                            {
                                continue;
                            }
                            pump(&mut stream, &s, &st);
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(VirtualPrinterHandle {
            shared,
            stop,
            thread: Some(thread),
            addr: Some(addr),
        })
    }

    /// Serve on a byte stream whose reads time out (e.g. a `serialport::TTYPort`
    /// from `TTYPort::pair()`, whose default timeout is 100 ms).
    pub fn serve_stream<S>(printer: VirtualPrinter, mut stream: S) -> std::io::Result<Self>
    where
        S: Read + Write + Send + 'static,
    {
        let shared = Arc::new(Mutex::new(printer));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("virtual-printer-serial".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    pump(&mut stream, &s, &st);
                    // Peer gone (PTY master closed): idle until stopped.
                    if !st.load(Ordering::Relaxed) {
                        std::thread::sleep(POLL);
                    }
                }
            })?;
        Ok(VirtualPrinterHandle {
            shared,
            stop,
            thread: Some(thread),
            addr: None,
        })
    }

    /// The TCP address, for [`VirtualPrinterHandle::serve_tcp`].
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Change what status queries report.
    pub fn set_state(&self, state: PrinterState) {
        lock(&self.shared).set_state(state);
    }

    /// A copy of the paper printed so far.
    pub fn paper(&self) -> Paper {
        lock(&self.shared).paper().clone()
    }

    /// Decoder counters so far.
    pub fn stats(&self) -> DecodeStats {
        lock(&self.shared).stats()
    }

    /// Poll until `pred(paper)` holds or `timeout` passes; true if it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Paper) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(lock(&self.shared).paper()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop the thread and get the printer back (with its paper).
    pub fn stop(mut self) -> VirtualPrinter {
        self.shutdown();
        let mut p = lock(&self.shared);
        p.finish();
        std::mem::take(&mut *p)
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VirtualPrinterHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
