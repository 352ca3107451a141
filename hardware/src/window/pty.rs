//! A simulated serial line: a pseudo-terminal whose terminal side is reachable at a
//! path of the test's choosing, as `/dev/ttyUSB0` would be on a board.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio_serial::{SerialPort, SerialStream};

/// Opens a pseudo-terminal and links its terminal side at `link` (replacing what was
/// there). Returns the master end, which the simulator serves, and a plain handle that
/// keeps the terminal side open.
///
/// The pair is opened without close-on-exec, so it is set here: a daemon started later
/// by the same test would otherwise inherit the master and the terminal would never
/// hang up on unplug. The terminal side is held through a plain file (no lock), so the
/// master sees no hang-up while the client closes and reopens; the pair's own handle
/// holds an exclusive lock that would keep the client out, so it is dropped.
pub fn plug_at(link: &Path) -> std::io::Result<(SerialStream, File, String)> {
    let (master, slave) = SerialStream::pair()?;
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: fcntl on a file descriptor we own, with no pointer arguments.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    let name = slave
        .name()
        .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)?;
    drop(slave);
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link)?;
    Ok((master, holder, name))
}
