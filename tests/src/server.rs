//! `hallq-server` instances for the hall server's tests: a configuration file in a
//! temporary directory, the binary built beside `hallq`, its web listener on a free
//! port, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::hallq_bin;

/// The password of the tests' admin account.
pub const ADMIN_PASSWORD: &str = "county-admin-2026";

/// The `hallq-server` binary.
pub fn server_bin() -> PathBuf {
    let bin = hallq_bin().with_file_name("hallq-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --bins` (workspace) first",
        bin.display()
    );
    bin
}

/// One running instance.
pub struct Instance {
    child: Option<Child>,
    /// Its name (`server.name`).
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    config: PathBuf,
    log: PathBuf,
    admin: std::sync::OnceLock<String>,
}

/// The configuration of an instance: `extra` is appended (regions, halls, ingest).
pub fn write_config(
    dir: &Path,
    name: &str,
    broker_port: u16,
    db_url: &str,
    extra: &str,
) -> (PathBuf, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let text = format!(
        "[server]\nname = \"{name}\"\n\n[broker]\nhost = \"127.0.0.1\"\nport = {broker_port}\n\n\
         [database]\nurl = \"{db_url}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n{extra}\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("server config written");
    (path, port)
}

impl Instance {
    /// Starts an instance and waits until its web listener answers.
    pub fn start(dir: &Path, name: &str, broker_port: u16, db_url: &str, extra: &str) -> Instance {
        let (config, port) = write_config(dir, name, broker_port, db_url, extra);
        let mut i = Instance {
            child: None,
            name: name.into(),
            url: format!("http://127.0.0.1:{port}"),
            config,
            log: dir.join(format!("{name}.log")),
            admin: std::sync::OnceLock::new(),
        };
        i.restart();
        i
    }

    /// Starts it again after [`Instance::kill`].
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(server_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("HALLQ_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hallq-server starts");
        self.child = Some(child);
        let c = crate::client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.get(format!("{}/healthz", self.url)).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not answer; its log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: a server that dies mid-batch.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP or SIGCONT: a server that hangs (messages pile up in flight to it).
    pub fn pause(&self, stop: bool) {
        if let Some(c) = &self.child {
            let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    /// A JSON document from its API, as the tests' admin over the configuration's first
    /// (top) region, created on first use.
    pub fn get(&self, path: &str) -> Value {
        let token = self.admin_token();
        let (s, b) = self.get_as(&token, path);
        assert_eq!(s, 200, "{path}: {b}");
        b
    }

    /// A bearer token of the tests' admin (`it-admin`, password [`ADMIN_PASSWORD`]).
    pub fn admin_token(&self) -> String {
        self.admin.get_or_init(|| self.new_admin_token()).clone()
    }

    fn new_admin_token(&self) -> String {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let top = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("code = \""))
            .and_then(|c| c.strip_suffix('"'))
            .expect("the configuration lists a region");
        // A second instance on the same database finds the account there already.
        let _ = self.account(
            &[
                "add",
                "it-admin",
                "--name",
                "测试管理员",
                "--role",
                "admin",
                "--region",
                top,
            ],
            ADMIN_PASSWORD,
        );
        let (s, b) = self.sign_in("it-admin", ADMIN_PASSWORD);
        assert_eq!(s, 200, "the tests' admin signs in: {b}");
        b["token"].as_str().expect("token").to_string()
    }

    /// Runs `hallq-server account <args>` with `stdin` as its standard input: whether it
    /// succeeded, and what it printed (both streams).
    pub fn account(&self, args: &[&str], stdin: &str) -> (bool, String) {
        use std::io::Write;
        let mut child = Command::new(server_bin())
            .arg("account")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hallq-server account starts");
        if let Some(mut i) = child.stdin.take() {
            let _ = writeln!(i, "{stdin}");
        }
        let out = child.wait_with_output().expect("hallq-server account ends");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs `hallq-server <command> --config <its configuration> <args>`: whether it
    /// succeeded, and what it printed (standard output, then standard error).
    pub fn cli(&self, command: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(server_bin())
            .arg(command)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("hallq-server runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `POST /api/v1/session`: status and body.
    pub fn sign_in(&self, login: &str, password: &str) -> (u16, Value) {
        crate::send(
            crate::client()
                .post(format!("{}/api/v1/session", self.url))
                .send_json(serde_json::json!({"login": login, "password": password})),
        )
    }

    /// A POST of JSON with a bearer token: status and body.
    pub fn post_as(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        crate::send(
            crate::client()
                .post(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {token}"))
                .send_json(body),
        )
    }

    /// A GET with a bearer token: status and body.
    pub fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        crate::send(
            crate::client()
                .get(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {token}"))
                .call(),
        )
    }

    /// Its `/metrics` text.
    pub fn metrics(&self) -> String {
        crate::client()
            .get(format!("{}/metrics", self.url))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }

    /// One metric's value.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
