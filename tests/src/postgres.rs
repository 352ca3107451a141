//! A real PostgreSQL for the hall server's tests: Debian's server binaries, a cluster
//! made by `initdb` in a temporary directory, listening on 127.0.0.1 on a free port,
//! stopped and removed on drop. PostgreSQL refuses to run as root, so as root the
//! cluster belongs to the `postgres` user (made by Debian's package) and every command
//! runs through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb`.
pub fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_user: Option<&'static str>,
    running: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// Makes and starts a cluster with a superuser `hallq` and a database `hallq`
    /// (password-less on loopback). `None` when the server is not installed: the
    /// caller reports the missing prerequisite.
    pub fn start() -> Option<Postgres> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("hallq-pg-")
            .tempdir()
            .expect("temp dir");
        let as_user = is_root().then_some("postgres");
        if as_user.is_some() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the cluster directory");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut pg = Postgres {
            dir,
            bin,
            port,
            as_user,
            running: false,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "hallq",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "hallq",
                "hallq",
            ],
        );
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The connection string of the `hallq` database.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=hallq dbname=hallq connect_timeout=5",
            self.port
        )
    }

    /// Its directory (the server's log is `pg.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server tool, run as the cluster's owner.
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut c = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        c.args(args).current_dir(self.dir.path());
        c
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let out = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts it (again, on the same port) and waits until it answers.
    pub fn start_again(&mut self) {
        let data = self.data();
        let log = self.dir.path().join("pg.log").display().to_string();
        let sock = self.dir.path().display().to_string();
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=64MB",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        );
        self.running = true;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgresql did not open its port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it: `fast` ends the sessions cleanly, otherwise `immediate` (like a crash:
    /// WAL recovery at the next start).
    pub fn stop(&mut self, fast: bool) {
        if !self.running {
            return;
        }
        let data = self.data();
        let mode = if fast { "fast" } else { "immediate" };
        self.run("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"]);
        self.running = false;
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    pub fn sql(&self, statement: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "hallq",
                "-d",
                "hallq",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = self
                .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}
