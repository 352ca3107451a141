//! systemd integration without a library: `READY=1` once the API is bound, and
//! `WATCHDOG=1` pings while the hall core still answers, so that systemd restarts a
//! controller whose core thread hung rather than one that merely idles.
//!
//! Both are datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). Without that variable — run by hand, or in tests — nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::core::HallCore;

/// Sends one notification; returns false when not run by systemd or the send failed.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    sent.is_ok()
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any, when it is meant
/// for this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok()
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Test hook: when `HALLQ_TEST_WATCHDOG_STOP_FILE` names a file and that file exists, the
/// pings stop as if the core hung (the image's acceptance test uses it to see systemd
/// restart the service). Unset on a real board; docs/operations.md documents it.
pub const WATCHDOG_STOP_FILE_ENV: &str = "HALLQ_TEST_WATCHDOG_STOP_FILE";

fn heartbeat_stopped_by_test() -> bool {
    std::env::var_os(WATCHDOG_STOP_FILE_ENV)
        .is_some_and(|p| !p.is_empty() && std::path::Path::new(&p).exists())
}

/// Pings the watchdog at half its interval, each time only after the core answered a
/// query; a stuck core stops the pings and systemd restarts the service.
pub async fn watchdog(hall: HallCore) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        if heartbeat_stopped_by_test() {
            tracing::warn!("test hook {WATCHDOG_STOP_FILE_ENV}: withholding the watchdog ping");
            continue;
        }
        let alive = tokio::time::timeout(interval / 4, hall.query(|_, _| ())).await;
        if matches!(alive, Ok(Ok(()))) {
            notify("WATCHDOG=1");
        } else {
            tracing::error!("hall core did not answer; withholding the watchdog ping");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // SAFETY of the test: this is the only test reading NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1"));
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!notify("READY=1"));
    }
}
