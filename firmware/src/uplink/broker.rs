//! A local mosquitto for the uplink benchmark and the end-to-end tests: generated
//! configuration, a free port on 127.0.0.1, persistence on (so a restart keeps the
//! receivers' sessions, as a real broker would), stopped on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package's broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// TLS for the listener.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Refuse clients without a certificate signed by `ca`.
    pub require_client_cert: bool,
}

/// How to run the broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// TLS, or plain TCP.
    pub tls: Option<BrokerTls>,
    /// A mosquitto password file; anonymous clients are refused when set.
    pub password_file: Option<PathBuf>,
}

/// A running (or stopped) mosquitto.
pub struct Broker {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    conf: PathBuf,
    /// Its directory (configuration, persistence, log).
    pub dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    /// Writes a configuration into `dir` and starts the broker on a free port.
    pub fn start(dir: &Path, opts: &BrokerOptions) -> std::io::Result<Broker> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let mut conf = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {}/\n\
             max_queued_messages 0\n\
             max_inflight_messages 0\n\
             user root\n\
             log_dest file {}\n",
            dir.display(),
            dir.join("mosquitto.log").display()
        );
        match &opts.password_file {
            Some(p) => conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                p.display()
            )),
            None => conf.push_str("allow_anonymous true\n"),
        }
        if let Some(t) = &opts.tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                t.require_client_cert
            ));
        }
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf)?;
        let mut b = Broker {
            child: None,
            port,
            conf: path,
            dir: dir.to_path_buf(),
        };
        b.restart()?;
        Ok(b)
    }

    /// Starts it again on the same port after [`Broker::stop`].
    pub fn restart(&mut self) -> std::io::Result<()> {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "mosquitto did not open port {} (see {})",
                    self.port,
                    self.dir.join("mosquitto.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops it with SIGTERM (it saves its sessions) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
