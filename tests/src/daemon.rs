//! The test crate's own daemon fixture: a configuration written from the example hall,
//! and the real `hallq run` process, killed (SIGKILL) on drop like a power cut.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// Writes the example hall's configuration for a test daemon into `dir` (data in
/// `dir/data`, listening on `listen`; with `unlimited`, always open, without caps, and
/// with the per-client connection cap raised to the cap in all) and returns its path.
pub fn write_config(dir: &Path, listen: &str, unlimited: bool) -> std::io::Result<PathBuf> {
    let mut text = hallq::config::EXAMPLE_HALL.replace(
        "data_dir = \"/var/lib/hallq\"",
        &format!("data_dir = {:?}", dir.join("data").display().to_string()),
    );
    text = text.replace(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = {listen:?}"),
    );
    if unlimited {
        text = text.replace("[queue.calendar]", "[queue.calendar]\nalways_open = true");
        text = text.replace("per_citizen_daily_limit = 3", "");
        text = text.replace("number_width = 3", "number_width = 6");
        // Every test client comes from 127.0.0.1: the load test's 200 staff and 8 kiosks
        // are one address here, as they would be 208 on a hall's LAN.
        text = text.replace(
            "[server]\n",
            "[server]\nlimits.max_connections_per_client = 1000\n",
        );
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.starts_with("daily_cap")
                    || l.starts_with("quota")
                    || l.starts_with("wait_alarm")
                    || l.starts_with("queue_alarm")
                    || l.starts_with("unmanned_alarm"))
            })
            .collect();
        text = kept.join("\n");
    }
    let path = dir.join("hallq.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A daemon started from this executable, stopped on drop.
pub struct Daemon {
    child: Child,
    /// Its base URL.
    pub url: String,
}

/// libfaketime's library for threaded programs (Debian package libfaketime).
pub const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

impl Daemon {
    /// Starts `hallq run --config F` and waits for it to announce its address.
    pub fn start(exe: &Path, config: &Path) -> std::io::Result<Daemon> {
        Daemon::start_with_env(exe, config, &[])
    }

    /// [`Daemon::start`] with extra environment variables (a preloaded fake clock, say).
    pub fn start_with_env(
        exe: &Path,
        config: &Path,
        env: &[(&str, &str)],
    ) -> std::io::Result<Daemon> {
        let stderr = if std::env::var_os("HALLQ_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Daemon::spawn(exe, config, env, stderr)
    }

    /// [`Daemon::start`] under libfaketime, the clock offset read from `offset_file` at
    /// every reading (write `+1d` into it and the controller's day ends), the monotonic
    /// clock left real. `None`, with the prerequisite reported as missing for `test`
    /// (which fails under CI), when libfaketime is not installed.
    pub fn start_faked_clock(
        exe: &Path,
        config: &Path,
        offset_file: &Path,
        test: &str,
    ) -> Option<Daemon> {
        if !Path::new(FAKETIME).exists() {
            crate::missing_prerequisite(
                test,
                &format!("libfaketime ({FAKETIME}; Debian package libfaketime)"),
            );
            return None;
        }
        std::fs::write(offset_file, "+0\n").expect("the fake clock's offset file");
        let offset = offset_file.to_str().expect("a UTF-8 temporary path");
        let env = [
            ("LD_PRELOAD", FAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", offset),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ];
        Some(Daemon::start_with_env(exe, config, &env).expect("daemon under a fake clock"))
    }

    /// [`Daemon::start`] with its log (`HALLQ_LOG=debug`) appended to `log`, for tests
    /// that check what the controller writes there.
    pub fn start_logging(exe: &Path, config: &Path, log: &Path) -> std::io::Result<Daemon> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        Daemon::spawn(exe, config, &[("HALLQ_LOG", "debug")], Stdio::from(file))
    }

    fn spawn(
        exe: &Path,
        config: &Path,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> std::io::Result<Daemon> {
        let mut child = std::process::Command::new(exe)
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line.trim().rsplit(' ').next().unwrap_or("").to_string();
        if !url.starts_with("http://") {
            let _ = child.kill();
            return Err(std::io::Error::other(format!(
                "daemon did not start: {line:?}"
            )));
        }
        Ok(Daemon { child, url })
    }

    /// The process id, to cut its power (SIGKILL) while other threads still talk to it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
