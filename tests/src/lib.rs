//! Helpers for the end-to-end tests: start the real `hallq` binary on a free port with
//! a fresh data directory, talk to it over HTTP, and kill it like a power cut.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod daemon;
pub use daemon::{Daemon, write_config};

pub mod dice;
pub mod mqtt;
pub mod postgres;
pub mod server;
use serde_json::Value;

pub mod webdriver;
pub mod webhook;

/// The `hallq` binary built beside this test (scripts/test builds it first).
pub fn hallq_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("hallq");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first",
        bin.display()
    );
    bin
}

/// The `hallq-lazyfs` binary (the forgetful test filesystem) built beside `hallq`.
pub fn lazyfs_bin() -> PathBuf {
    let bin = hallq_bin().with_file_name("hallq-lazyfs");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --bins` (workspace) first",
        bin.display()
    );
    bin
}

/// Whether this is a CI run (`CI=true`, as CI services and `.ci/run` set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test's prerequisite (`what`, named as the machine lacks it) is missing. Under
/// `CI=true` the test fails here, naming it. Elsewhere it returns, and the caller
/// returns too: the test is skipped, and says so where a person sees it — on the
/// terminal past the test harness's capture, and in the `HALLQ_SKIP_LOG` file when set
/// (`scripts/test` prints that file as its last lines).
pub fn missing_prerequisite(test: &str, what: &str) {
    if under_ci() {
        panic!("{test}: prerequisite missing: {what} (CI=true: a missing prerequisite fails)");
    }
    let line = format!("SKIPPED {test}: {what} (outside CI; with CI=true this fails)\n");
    // Written to the stream itself, not through eprintln!, which the harness captures.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("HALLQ_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A hall in a temporary directory: config written, daemon not yet started.
pub struct Hall {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
}

impl Hall {
    /// A hall that is always open with no caps (tests run at any hour).
    pub fn new() -> Hall {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = write_config(dir.path(), "127.0.0.1:0", true).expect("config");
        Hall { dir, config }
    }

    /// The same hall with `extra` TOML (a device section, say) added to its config.
    pub fn with_config(extra: &str) -> Hall {
        let hall = Hall::new();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&hall.config)
            .expect("config file");
        writeln!(f, "\n{extra}").expect("append config");
        hall
    }

    /// A hall closed for a public holiday today (and yesterday and tomorrow, so that a
    /// test running across midnight is closed all the same): the kiosk and the API must
    /// say so before anyone picks a service.
    pub fn closed_today() -> Hall {
        let hall = Hall::new();
        let text = std::fs::read_to_string(&hall.config).expect("config file");
        let today = (chrono::Utc::now() + chrono::Duration::minutes(480)).date_naive();
        let days: Vec<String> = [-1, 0, 1]
            .iter()
            .map(|d| format!("\"{}\"", today + chrono::Duration::days(*d)))
            .collect();
        let holidays = text
            .lines()
            .find(|l| l.starts_with("holidays = "))
            .expect("the example hall lists its holidays")
            .to_string();
        let text = text
            .replace("always_open = true", "always_open = false")
            .replace(&holidays, &format!("holidays = [{}]", days.join(", ")));
        std::fs::write(&hall.config, text).expect("config file");
        hall
    }

    /// The hall's database, opened read-only, to check what the daemon stored.
    pub fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.dir.path().join("data").join("hallq.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the database")
    }

    /// Payloads of stored events of one type, oldest first.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        let db = self.database();
        let mut stmt = db
            .prepare("SELECT payload FROM events WHERE type = ?1 ORDER BY seq")
            .expect("query");
        stmt.query_map([kind], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|p| serde_json::from_str(&p.expect("row")).expect("json payload"))
            .collect()
    }

    /// Starts the daemon.
    pub fn start(&self) -> Daemon {
        Daemon::start(&hallq_bin(), &self.config).expect("daemon starts")
    }

    /// Starts the daemon with extra environment variables.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_env(&hallq_bin(), &self.config, env).expect("daemon starts")
    }

    /// Starts the daemon with its debug log appended to `log`.
    pub fn start_logging(&self, log: &Path) -> Daemon {
        Daemon::start_logging(&hallq_bin(), &self.config, log).expect("daemon starts")
    }

    /// Runs `hallq staff add`, giving the PIN on stdin; the account is named 测试员.
    pub fn add_staff(&self, id: &str, pin: &str, args: &[&str]) {
        self.add_staff_named(id, "测试员", pin, args)
    }

    /// Runs `hallq staff add` for an account with its own name.
    pub fn add_staff_named(&self, id: &str, name: &str, pin: &str, args: &[&str]) {
        let mut child = Command::new(hallq_bin())
            .args(["staff", "add", "--config"])
            .arg(&self.config)
            .args(["--id", id, "--name", name])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("hallq staff add");
        writeln!(child.stdin.take().expect("stdin"), "{pin}").expect("write PIN");
        assert!(child.wait().expect("wait").success(), "staff add failed");
    }

    /// Runs `hallq check-config` on the hall's file, which must refuse it; returns
    /// what it said.
    pub fn config_refusal(&self) -> String {
        let out = Command::new(hallq_bin())
            .arg("check-config")
            .arg(&self.config)
            .output()
            .expect("hallq runs");
        assert!(!out.status.success(), "the configuration was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs `hallq` with arguments and returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(hallq_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("hallq runs");
        assert!(
            out.status.success(),
            "hallq {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for Hall {
    fn default() -> Self {
        Hall::new()
    }
}

/// Where tests save screenshots: `docs/screens/` when `HALLQ_SCREENS=1` (to refresh
/// the README's pictures), else `hallq-screens` in the temp folder, so that a test run leaves the
/// working tree clean.
pub fn screens_dir() -> PathBuf {
    let dir = if std::env::var_os("HALLQ_SCREENS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screens")
    } else {
        std::env::temp_dir().join("hallq-screens")
    };
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// An HTTP client that returns every status as a value.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Signs a member of staff in (at `window`, or at none for a supervisor) and returns
/// the `Authorization` header's value.
pub fn sign_in(url: &str, staff: &str, pin: &str, window: Option<u32>) -> String {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/sessions"))
            .send_json(serde_json::json!({ "staff_id": staff, "pin": pin, "window": window })),
    );
    assert_eq!(s, 201, "{b}");
    format!("Bearer {}", b["token"].as_str().unwrap_or_default())
}

/// A response's status and JSON body.
pub fn send(req: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut resp = req.expect("request reached the daemon");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    (status, body)
}
