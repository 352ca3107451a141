//! Printer transports: serial, USB printer class device file, raw TCP (port 9100).
//!
//! All are plain blocking `std` I/O behind one trait, [`PrinterTransport`], because
//! the daemon runs the printer in the one thread/task that owns it; a status query
//! needs a read timeout, so the trait adds [`PrinterTransport::set_timeout`].
//! [`Backoff`] and [`Reconnect`] compute when to try again after a printer vanished;
//! they never sleep themselves, so the caller's task stays in charge of time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The usual raw-printing TCP port (HP JetDirect / "AppSocket").
pub const RAW_TCP_PORT: u16 = 9100;

/// Why a transport could not be opened.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The serial port could not be opened or configured.
    #[error("serial port {path}: {source}")]
    Serial {
        /// Device path.
        path: String,
        /// Cause.
        #[source]
        source: serialport::Error,
    },
    /// The device file could not be opened.
    #[error("printer device {path}: {source}")]
    Device {
        /// Device path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TCP address did not resolve or the connection failed.
    #[error("printer at {addr}: {source}")]
    Tcp {
        /// `host:port`.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the hall's printer is attached, as written in the daemon's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportConfig {
    /// RS-232 / USB-serial adapter, e.g. `/dev/ttyUSB0` at 9600 or 115200 baud.
    Serial {
        /// Device path.
        path: String,
        /// Baud rate.
        baud: u32,
        /// RTS/CTS hardware flow control; most ticket printers want it on serial.
        #[serde(default)]
        hardware_flow_control: bool,
    },
    /// USB printer class device (`/dev/usb/lp0`), opened as a plain file.
    UsbLp {
        /// Device path.
        path: PathBuf,
    },
    /// Network printer: `host:port` (port usually 9100).
    Tcp {
        /// `host:port`.
        addr: String,
    },
}

/// A byte pipe to a printer with a settable read timeout.
pub trait PrinterTransport: Read + Write + Send {
    /// Bound how long one read may block, so status queries can time out.
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
    /// Human-readable name for logs and warnings ("serial /dev/ttyUSB0").
    fn describe(&self) -> String;
}

/// Serial transport over the `serialport` crate (built without libudev).
pub struct SerialTransport {
    port: Box<dyn serialport::SerialPort>,
}

impl SerialTransport {
    /// Open 8N1 at `baud`, with a read timeout.
    pub fn open(
        path: &str,
        baud: u32,
        hardware_flow_control: bool,
        timeout: Duration,
    ) -> Result<SerialTransport, TransportError> {
        let flow = if hardware_flow_control {
            serialport::FlowControl::Hardware
        } else {
            serialport::FlowControl::None
        };
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(flow)
            .timeout(timeout)
            .open()
            .map_err(|source| TransportError::Serial {
                path: path.to_string(),
                source,
            })?;
        Ok(SerialTransport { port })
    }

    /// Wrap an already open port (e.g. one end of a pseudo-terminal pair in tests).
    pub fn from_port(port: Box<dyn serialport::SerialPort>) -> SerialTransport {
        SerialTransport { port }
    }

    /// Give the port back.
    pub fn release(self) -> Box<dyn serialport::SerialPort> {
        self.port
    }
}

impl Read for SerialTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.port.read(buf)
    }
}

impl Write for SerialTransport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.port.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.port.flush()
    }
}

impl PrinterTransport for SerialTransport {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.port.set_timeout(timeout).map_err(std::io::Error::from)
    }
    fn describe(&self) -> String {
        format!("serial {}", self.port.name().unwrap_or_default())
    }
}

/// USB printer class device file. The kernel's `usblp` driver does the USB part;
/// the file has no read timeout of its own, so [`PrinterTransport::set_timeout`]
/// is a no-op here and a status read may block until the printer answers.
pub struct UsbLpTransport {
    file: File,
    path: PathBuf,
}

impl UsbLpTransport {
    /// Open the device read/write.
    pub fn open(path: impl Into<PathBuf>) -> Result<UsbLpTransport, TransportError> {
        let path = path.into();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| TransportError::Device {
                path: path.clone(),
                source,
            })?;
        Ok(UsbLpTransport { file, path })
    }

    /// Give the file back.
    pub fn release(self) -> File {
        self.file
    }
}

impl Read for UsbLpTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for UsbLpTransport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl PrinterTransport for UsbLpTransport {
    fn set_timeout(&mut self, _timeout: Duration) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        format!("usb {}", self.path.display())
    }
}

/// Raw TCP to a network printer, with connect, read and write timeouts so a dead
/// printer never hangs the printer task.
pub struct TcpTransport {
    stream: TcpStream,
    addr: String,
}

impl TcpTransport {
    /// Connect to `addr` (`host:port`); every resolved address is tried in turn.
    pub fn connect(addr: &str, timeout: Duration) -> Result<TcpTransport, TransportError> {
        let err = |source| TransportError::Tcp {
            addr: addr.to_string(),
            source,
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved");
        for sa in addr.to_socket_addrs().map_err(err)? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout)).map_err(err)?;
                    stream.set_write_timeout(Some(timeout)).map_err(err)?;
                    stream.set_nodelay(true).map_err(err)?;
                    return Ok(TcpTransport {
                        stream,
                        addr: addr.to_string(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(err(last))
    }

    /// Give the stream back.
    pub fn release(self) -> TcpStream {
        self.stream
    }
}

impl Read for TcpTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for TcpTransport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

impl PrinterTransport for TcpTransport {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        let t = if timeout.is_zero() {
            Duration::from_millis(1)
        } else {
            timeout
        };
        self.stream.set_read_timeout(Some(t))
    }
    fn describe(&self) -> String {
        format!("tcp {}", self.addr)
    }
}

/// Open the transport a config names, with `timeout` for connect and reads.
pub fn open(
    config: &TransportConfig,
    timeout: Duration,
) -> Result<Box<dyn PrinterTransport>, TransportError> {
    Ok(match config {
        TransportConfig::Serial {
            path,
            baud,
            hardware_flow_control,
        } => Box::new(SerialTransport::open(
            path,
            *baud,
            *hardware_flow_control,
            timeout,
        )?),
        TransportConfig::UsbLp { path } => Box::new(UsbLpTransport::open(path.clone())?),
        TransportConfig::Tcp { addr } => Box::new(TcpTransport::connect(addr, timeout)?),
    })
}

/// Exponential backoff: `initial`, `2·initial`, `4·initial`, … capped at `max`.
/// Pure arithmetic, so it tests without clocks; the caller sleeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 500 ms doubling up to 30 s: a replugged printer is found within seconds,
    /// a dead one is not hammered.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// New backoff; `max` below `initial` is raised to `initial`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Delay before the next attempt, and count this attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.attempt = self.attempt.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Failed attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Opens a transport and, on failure, says how long to wait before the next try.
#[derive(Debug, Clone)]
pub struct Reconnect {
    config: TransportConfig,
    timeout: Duration,
    backoff: Backoff,
}

impl Reconnect {
    /// For `config`, with `timeout` for each open and the given backoff.
    pub fn new(config: TransportConfig, timeout: Duration, backoff: Backoff) -> Reconnect {
        Reconnect {
            config,
            timeout,
            backoff,
        }
    }

    /// Try once. `Ok` resets the backoff; `Err` carries the error and the delay the
    /// caller should sleep before calling again.
    #[allow(clippy::result_large_err)]
    pub fn try_connect(&mut self) -> Result<Box<dyn PrinterTransport>, (TransportError, Duration)> {
        match open(&self.config, self.timeout) {
            Ok(t) => {
                self.backoff.reset();
                Ok(t)
            }
            Err(e) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "printer connect failed");
                Err((e, delay))
            }
        }
    }

    /// Failed attempts since the last success (for a device-failure warning).
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn backoff_doubles_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u64> = (0..7).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.attempts(), 7);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn backoff_never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn reconnect_reports_delay_then_succeeds_and_resets() {
        // Reserve a port, close it: connecting fails.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = TransportConfig::Tcp {
            addr: format!("127.0.0.1:{port}"),
        };
        let mut r = Reconnect::new(
            cfg,
            Duration::from_millis(200),
            Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
        );
        let (_, d1) = r.try_connect().err().unwrap();
        let (_, d2) = r.try_connect().err().unwrap();
        assert_eq!(
            (d1, d2),
            (Duration::from_millis(10), Duration::from_millis(20))
        );
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let mut t = r.try_connect().ok().unwrap();
        assert_eq!(r.attempts(), 0);
        t.write_all(&[0x1B, 0x40]).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        assert_eq!(b, [0x1B, 0x40]);
        assert!(t.describe().starts_with("tcp 127.0.0.1:"));
    }

    #[test]
    fn missing_device_file_is_a_device_error() {
        let e = UsbLpTransport::open("/nonexistent/usb/lp9").err().unwrap();
        assert!(matches!(e, TransportError::Device { .. }));
        assert!(e.to_string().contains("/nonexistent/usb/lp9"));
    }

    #[test]
    fn transport_config_reads_from_toml() {
        let c: TransportConfig =
            toml::from_str("kind = \"serial\"\npath = \"/dev/ttyUSB0\"\nbaud = 9600").unwrap();
        assert_eq!(
            c,
            TransportConfig::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 9600,
                hardware_flow_control: false
            }
        );
        let c: TransportConfig =
            toml::from_str("kind = \"usb_lp\"\npath = \"/dev/usb/lp0\"").unwrap();
        assert!(matches!(c, TransportConfig::UsbLp { .. }));
        assert!(
            toml::from_str::<TransportConfig>("kind = \"tcp\"\naddr = \"a:1\"\nx = 1").is_err()
        );
    }
}
