//! `hallq bench`: figures a hall can reproduce on its own board. Every speed is shown
//! beside a baseline measured in the same run on the same disk: the durable ticket over
//! HTTP against a bare SQLite insert with the same pragmas. Also `hallq gen-history`,
//! which writes a year of realistic traffic so start-up time can be measured against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use hallq_engine::{Class, Command, Engine, Role, Timestamp};
use rusqlite::{Connection, OptionalExtension};

use crate::config::{Config, EXAMPLE_HALL};
use crate::history::{HistoryError, generate_history, unlimited_setup};
use crate::store::{Store, StoreError};

/// Why a benchmark (or the history generator) could not run to the end, in words for
/// the person who ran it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    /// An error saying `what`.
    pub fn new(what: impl Into<String>) -> BenchError {
        BenchError(what.into())
    }
}

/// A benchmark step's result.
pub type BenchResult<T> = Result<T, BenchError>;

macro_rules! bench_error_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for BenchError {
            fn from(e: $t) -> BenchError {
                BenchError(e.to_string())
            }
        })*
    };
}

bench_error_from!(
    std::io::Error,
    StoreError,
    HistoryError,
    rusqlite::Error,
    crate::config::ConfigError,
    crate::core::CoreError,
    serde_json::Error,
    ureq::Error,
    rumqttc::ClientError,
    tokio_serial::Error,
);

/// Writes a configuration for a benchmark daemon and returns its path.
pub(crate) fn write_config(dir: &Path, listen: &str, unlimited: bool) -> std::io::Result<PathBuf> {
    let mut text = EXAMPLE_HALL.replace(
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

/// The `p` quantile (0.0–1.0, nearest rank) of already sorted samples; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// [`percentile`] of samples in any order.
pub fn percentile_of(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    percentile(&samples, p)
}

/// A duration in milliseconds, for printing figures.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How many times `base` `d` is (0 over a zero base rather than infinity).
fn times(d: Duration, base: Duration) -> f64 {
    ms(d) / ms(base).max(1e-9)
}

/// Tickets per simulated day in the engine benchmark: a busy county hall's day, as in
/// `gen-history`, so the figure is for the engine's working size rather than for one
/// endless day that no hall ever has.
const ENGINE_DAY_TICKETS: usize = 5_500;

/// Engine alone: issue, call and finish cycles over days of [`ENGINE_DAY_TICKETS`]
/// tickets (the day rolls over as it would at the configured hour). Returns commands
/// per second and how many of them the engine refused (a refusal is cheap, so a
/// figure with many would flatter the engine; the bench prints both).
pub fn engine_commands_per_sec(cycles: usize) -> (f64, usize) {
    let setup = unlimited_setup();
    let windows: Vec<(u32, String)> = setup
        .windows
        .iter()
        .map(|w| (w.number, w.services[0].code.clone()))
        .collect();
    let start = Timestamp(1_795_395_600_000);
    let mut e = Engine::new(setup, start).expect("valid setup");
    let mut now = start;
    let sign_in = |e: &mut Engine, now: Timestamp| {
        for (w, _) in &windows {
            let _ = e.handle(
                Command::SignIn {
                    window: *w,
                    staff: format!("B{w}"),
                    role: Role::A,
                },
                now,
            );
        }
    };
    sign_in(&mut e, now);
    let (mut commands, mut refused) = (0usize, 0usize);
    let started = Instant::now();
    for i in 0..cycles {
        now = Timestamp(now.0 + 1);
        if i > 0 && i % ENGINE_DAY_TICKETS == 0 {
            now = Timestamp(start.0 + 86_400_000 * (i / ENGINE_DAY_TICKETS) as i64);
            sign_in(&mut e, now);
        }
        let (w, code) = &windows[i % windows.len()];
        let staff = format!("B{w}");
        for cmd in [
            Command::Issue {
                token_hash: None,
                service: code.clone(),
                class: Class::Normal,
                idempotency_key: None,
                citizen: None,
                channel: "bench".into(),
                green_reason: None,
                proxy: false,
                issued_by: None,
            },
            Command::CallNext {
                window: *w,
                staff: staff.clone(),
            },
            Command::Finish {
                window: *w,
                staff,
                case_no: None,
            },
        ] {
            commands += 1;
            refused += usize::from(e.handle(cmd, now).is_err());
        }
        if i % 1024 == 0 {
            let _ = e.take_changes();
        }
    }
    (commands as f64 / started.elapsed().as_secs_f64(), refused)
}

/// The baseline: a table with the store's pragmas, one row per durable commit.
pub struct BareTable {
    conn: Connection,
    next: usize,
}

impl BareTable {
    /// A fresh `bare.db` in `dir`.
    pub fn create(dir: &Path) -> Result<BareTable, StoreError> {
        let path = dir.join("bare.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let conn = Connection::open(&path)?;
        crate::store::durable(&conn)?;
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, number TEXT NOT NULL, payload TEXT NOT NULL)",
        )?;
        Ok(BareTable { conn, next: 0 })
    }

    /// Inserts one row in its own transaction; returns how long the commit took.
    pub fn insert(&mut self) -> Result<Duration, StoreError> {
        self.next += 1;
        let t = Instant::now();
        self.conn.execute(
            "INSERT INTO t (number, payload) VALUES (?1, ?2)",
            rusqlite::params![format!("A{:06}", self.next), "{\"type\":\"ticket_issued\"}"],
        )?;
        Ok(t.elapsed())
    }
}

/// The durable ticket without HTTP: issue commands through a hall core of its own (a
/// thread hop, the engine, one transaction on disk) from an async caller in this
/// process. Beside the bare insert and the HTTP round trip it shows where a request's
/// time goes.
pub struct InProcessCore {
    hall: Option<crate::core::HallCore>,
    thread: Option<std::thread::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl InProcessCore {
    /// A core on a fresh `core.db` in `dir`, with the benchmark's unlimited hall.
    pub fn start(dir: &Path) -> BenchResult<InProcessCore> {
        let path = dir.join("core.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let (hall, thread) = crate::core::HallCore::start(
            crate::in_force::InForce::file(unlimited_setup(), Default::default()),
            Store::open(&path)?,
        )?;
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        Ok(InProcessCore {
            hall: Some(hall),
            thread: Some(thread),
            rt,
        })
    }

    /// Issues one ticket and waits for its commit; returns how long that took.
    pub fn issue(&self) -> BenchResult<Duration> {
        let hall = self
            .hall
            .as_ref()
            .ok_or_else(|| BenchError::new("core stopped"))?;
        let t = Instant::now();
        self.rt.block_on(hall.execute(Command::Issue {
            token_hash: None,
            service: "SB".into(),
            class: Class::Normal,
            idempotency_key: None,
            citizen: None,
            channel: "bench".into(),
            green_reason: None,
            proxy: false,
            issued_by: None,
        }))?;
        Ok(t.elapsed())
    }
}

impl Drop for InProcessCore {
    fn drop(&mut self) {
        // The core thread ends when its last handle is gone.
        self.hall = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A daemon started from this executable, stopped on drop.
pub(crate) struct Daemon {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Daemon {
    /// Starts `hallq run --config F` and waits for it to announce its address.
    pub fn start(exe: &Path, config: &Path) -> std::io::Result<Daemon> {
        let mut child = Process::new(exe)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("HALLQ_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
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

    /// CPU time the daemon has used (user and system), from `/proc`.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces):
        // utime and stime are the 12th and 13th of them, in clock ticks.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_micros(ticks * 1_000_000 / hz))
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

/// A keep-alive HTTP client as the kiosk uses one. A response is handed back to the
/// agent's pool only once its body has been read to the end; a caller that drops it
/// unread pays a new TCP connection on its next request.
pub(crate) fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Issues one ticket over HTTP; the time runs until the ticket's number is in hand
/// (the whole body read, as a kiosk must before it can show it).
pub(crate) fn issue_one(agent: &ureq::Agent, url: &str, key: &str) -> Result<Duration, String> {
    post_ticket(agent, url, key, 201)
}

/// The same request again with a retry key already used: the answer is the ticket that
/// key made, from the engine's memory, and nothing is written. The exchange is the
/// ticket's own (request, handler, core thread, answer of the same size) without the
/// disk: the floor the issue's plain-disk ratio means.
fn replay_one(agent: &ureq::Agent, url: &str, key: &str) -> Result<Duration, String> {
    post_ticket(agent, url, key, 200)
}

/// `POST /api/v1/tickets` with retry key `key`, expecting `status` and a ticket number.
fn post_ticket(agent: &ureq::Agent, url: &str, key: &str, status: u16) -> Result<Duration, String> {
    let t = Instant::now();
    let mut resp = agent
        .post(format!("{url}/api/v1/tickets"))
        .header("Idempotency-Key", key)
        .send_json(serde_json::json!({ "service": "SB" }))
        .map_err(|e| e.to_string())?;
    let got = resp.status().as_u16();
    let body: serde_json::Value = resp.body_mut().read_json().map_err(|e| e.to_string())?;
    let elapsed = t.elapsed();
    if got != status {
        return Err(format!("status {got} (expected {status}): {body}"));
    }
    if body["ticket"]["number"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no ticket number in {body}"));
    }
    Ok(elapsed)
}

/// The daemon's `/metrics` text.
fn scrape(agent: &ureq::Agent, url: &str) -> Option<String> {
    agent
        .get(format!("{url}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()
}

/// The value of the sample `name` (with its labels, if any) in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
}

/// The daemon's group-commit counters from `/metrics`: transactions, writers, commit
/// seconds, gather seconds, sync seconds.
fn commit_totals(agent: &ureq::Agent, url: &str) -> Option<[f64; 5]> {
    let text = scrape(agent, url)?;
    Some([
        sample(&text, "hallq_commits_total")?,
        sample(&text, "hallq_commit_writers_total")?,
        sample(&text, "hallq_commit_seconds_total")?,
        sample(&text, "hallq_commit_gather_seconds_total")?,
        sample(&text, "hallq_commit_sync_seconds_total")?,
    ])
}

/// Mean milliseconds the daemon itself spent on a route (from its request-latency
/// histogram: from the request's arrival in the router to its response).
fn server_mean_ms(text: &str, route: &str, method: &str, status: u16) -> Option<f64> {
    let labels = format!("{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}");
    let sum = sample(
        text,
        &format!("hallq_http_request_duration_seconds_sum{labels}"),
    )?;
    let count = sample(
        text,
        &format!("hallq_http_request_duration_seconds_count{labels}"),
    )?;
    Some(sum * 1000.0 / count.max(1.0))
}

/// Options of `hallq bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Directory for the databases (the disk being measured).
    pub dir: PathBuf,
    /// Sequential requests.
    pub requests: usize,
    /// Concurrent clients for the throughput run.
    pub clients: usize,
    /// Also measure start-up with this many days of generated history.
    pub history_days: Option<u32>,
    /// Tickets per generated day.
    pub per_day: u32,
    /// Also run the disk figures in this directory (an emulated SD card: a
    /// `hallq-lazyfs --fsync-delay-ms 2` mount) and print both disks side by side.
    pub sd_dir: Option<PathBuf>,
}

/// The figures of one disk that the plain-disk/SD-card table compares.
#[derive(Debug, Clone, Copy)]
struct DiskFigures {
    bare_p50: Duration,
    in_process_p50: Duration,
    floor_p50: Duration,
    replay_p50: Duration,
    http_p50: Duration,
    http_p99: Duration,
    concurrent_per_sec: f64,
    /// Mean time the concurrent run's transactions took to end (last writes and sync).
    concurrent_sync: Duration,
    fsync_p50: Duration,
}

/// The pages each commit still in `db`'s write-ahead log wrote (oldest first), read from
/// the WAL file itself: its header's salts mark the frames of the current log, and a
/// frame whose "database size" field is not zero ends a commit.
fn commits_in_wal(db: &Path) -> BenchResult<Vec<Vec<u32>>> {
    let wal = std::fs::read(format!("{}-wal", db.display()))?;
    let be = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let page_size = be(&wal, 8).ok_or_else(|| BenchError::new("WAL without a header"))? as usize;
    let salts = wal
        .get(16..24)
        .ok_or_else(|| BenchError::new("WAL without salts"))?;
    let (mut commits, mut current) = (Vec::new(), Vec::new());
    let mut at = 32;
    while let Some(frame) = wal.get(at..at + 24) {
        if &frame[8..16] != salts || wal.len() < at + 24 + page_size {
            break;
        }
        current.push(be(frame, 0).unwrap_or(0));
        if be(frame, 4).unwrap_or(0) != 0 {
            commits.push(std::mem::take(&mut current));
        }
        at += 24 + page_size;
    }
    Ok(commits)
}

/// What a ticket's commits write, from the WAL of `db` after a run of single tickets:
/// the median number of pages a commit, how many commits that is of, and the pages of
/// the last commit named by the table or index they belong to (SQLite's `dbstat`).
fn ticket_pages(db: &Path) -> BenchResult<(usize, usize, Vec<String>)> {
    let commits = commits_in_wal(db)?;
    let last = commits
        .last()
        .ok_or_else(|| BenchError::new("no commit in the WAL"))?;
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT name FROM dbstat WHERE pageno = ?1")?;
    let names = last
        .iter()
        .map(|p| {
            let name: Option<String> = stmt
                .query_row([p], |r| r.get(0))
                .optional()
                .map_err(StoreError::from)?;
            Ok(name.unwrap_or_else(|| format!("page {p}")))
        })
        .collect::<BenchResult<Vec<_>>>()?;
    let mut sizes: Vec<usize> = commits.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    Ok((sizes[sizes.len() / 2], sizes.len(), names))
}

/// One write and fdatasync (as SQLite syncs its WAL) of a small file in `dir`, `n` times:
/// what one sync costs there.
fn fsync_p50(dir: &Path, n: usize) -> BenchResult<Duration> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let f = std::fs::File::create(&path)?;
    f.write_all_at(&[0; 4096], 0)?;
    f.sync_all()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        // Over the same bytes, as SQLite rewrites its WAL: no size change to journal.
        f.write_all_at(&(i as u64).to_le_bytes(), 0)?;
        let t = Instant::now();
        f.sync_data()?;
        samples.push(t.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(percentile_of(samples, 0.5))
}

/// Runs the benchmark and prints the figures.
// Over 100 lines: the benchmark's steps in one sequence, so every figure comes from one run.
pub fn run(opts: &BenchOptions) -> BenchResult<()> {
    std::fs::create_dir_all(&opts.dir)?;
    let exe = std::env::current_exe()?;
    println!(
        "hallq bench — {} sequential requests, {} clients, data in {}",
        opts.requests,
        opts.clients,
        opts.dir.display()
    );

    const CYCLES: usize = 200_000;
    let (engine_rate, refused) = engine_commands_per_sec(CYCLES);
    println!(
        "engine alone:             {:>10.0} commands/s (issue, call, finish cycles; {refused} of {} refused)",
        engine_rate,
        3 * CYCLES
    );

    let plain = disk_figures(&exe, &opts.dir, opts)?;
    let sd = match &opts.sd_dir {
        Some(sd_dir) => {
            println!(
                "— the same on the emulated SD card in {} —",
                sd_dir.display()
            );
            Some(disk_figures(&exe, sd_dir, opts)?)
        }
        None => None,
    };
    print_ratios(&plain, sd.as_ref(), opts.clients);

    printer_latency(&exe, &opts.dir, 300)?;

    if let Some(days) = opts.history_days {
        let hist_dir = opts.dir.join("history");
        let _ = std::fs::remove_dir_all(&hist_dir);
        std::fs::create_dir_all(&hist_dir)?;
        let config = write_config(&hist_dir, "127.0.0.1:0", true)?;
        let cfg = Config::load(&config)?;
        std::fs::create_dir_all(&cfg.storage.data_dir)?;
        let t = Instant::now();
        let tickets = generate_history(&cfg.database(), days, opts.per_day)?;
        println!(
            "history generated:        {tickets} tickets over {days} days in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // A restart mid-day: today's queue must be loaded too, not only yesterday's.
        {
            let d = Daemon::start(&exe, &config)?;
            let per_client = (opts.per_day as usize).div_ceil(opts.clients.max(1));
            let clients: Vec<_> = (0..opts.clients.max(1))
                .map(|c| {
                    let url = d.url.clone();
                    std::thread::spawn(move || {
                        let agent = new_agent();
                        (0..per_client).try_for_each(|i| {
                            issue_one(&agent, &url, &format!("today-{c}-{i}")).map(drop)
                        })
                    })
                })
                .collect();
            for c in clients {
                c.join()
                    .map_err(|_| BenchError::new("client thread panicked"))?
                    .map_err(BenchError::new)?;
            }
        }
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let d = Daemon::start(&exe, &config)?;
            let agent = new_agent();
            loop {
                if let Ok(r) = agent.get(format!("{}/api/v1/health", d.url)).call()
                    && r.status().as_u16() == 200
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            best = best.min(t.elapsed());
        }
        println!(
            "start-up to serving:      {:>10.1} ms with {tickets} tickets of history and {} of today (best of 3; target ≤ 300 ms)",
            ms(best),
            opts.per_day
        );
    }
    Ok(())
}

/// The figures that depend on the disk, in `dir`: the four interleaved sequential
/// figures, the concurrent run and the daemon's memory; printed, and returned for the
/// ratios.
// Over 100 lines: the steps share one daemon, so every figure of a disk comes from one run.
fn disk_figures(exe: &Path, dir: &Path, opts: &BenchOptions) -> BenchResult<DiskFigures> {
    std::fs::create_dir_all(dir)?;
    let fsync = fsync_p50(dir, 200)?;
    println!(
        "one fdatasync (8 bytes rewritten): p50 {:>7.3} ms   in {}",
        ms(fsync),
        dir.display()
    );
    // The sequential figures are taken interleaved, one sample of each per round, so
    // that all four see the same disk and the same neighbours: a shared machine's
    // fsync time drifts by 10x within a minute, and ratios of figures taken minutes
    // apart would measure the drift.
    let run_dir = dir.join("daemon");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let config = write_config(&run_dir, "127.0.0.1:0", true)?;
    let daemon = Daemon::start(exe, &config)?;
    let agent = new_agent();
    let mut bare_table = BareTable::create(dir)?;
    let core = InProcessCore::start(dir)?;
    for i in 0..200 {
        bare_table.insert()?;
        core.issue()?;
        issue_one(&agent, &daemon.url, &format!("warm-{i}")).map_err(BenchError::new)?;
    }
    let n = opts.requests;
    let (mut bare, mut in_process, mut round_trip, mut seq, mut replay) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        bare.push(bare_table.insert()?);
        in_process.push(core.issue()?);
        let t = Instant::now();
        let mut r = agent
            .get(format!("{}/api/v1/health", daemon.url))
            .call()
            .map_err(|e| BenchError::new(format!("health: {e}")))?;
        let body = r.body_mut().read_to_string()?;
        round_trip.push(t.elapsed());
        if r.status().as_u16() != 200 {
            return Err(BenchError::new(format!(
                "health: status {}: {body}",
                r.status()
            )));
        }
        let key = format!("seq-{i}");
        seq.push(issue_one(&agent, &daemon.url, &key).map_err(BenchError::new)?);
        replay.push(replay_one(&agent, &daemon.url, &key).map_err(BenchError::new)?);
    }
    // The pages of the tickets' commits still in the logs (the checkpointer starts a
    // new log at most every quarter second; read before the daemon stops).
    let pages = ticket_pages(&dir.join("core.db"))?;
    let http_pages = ticket_pages(&run_dir.join("data").join("hallq.db"))?;
    drop(core);
    for v in [
        &mut bare,
        &mut in_process,
        &mut round_trip,
        &mut seq,
        &mut replay,
    ] {
        v.sort();
    }
    let ratio = |v: &[Duration], p: f64| times(percentile(v, p), percentile(&bare, p));
    println!(
        "bare SQLite insert:       p50 {:>7.3} ms   p99 {:>7.3} ms   (WAL, synchronous=FULL, same disk)",
        ms(percentile(&bare, 0.5)),
        ms(percentile(&bare, 0.99))
    );
    println!(
        "durable ticket, no HTTP:  p50 {:>7.3} ms   p99 {:>7.3} ms   = {:.2}x / {:.2}x the bare insert (core thread, engine, one transaction)",
        ms(percentile(&in_process, 0.5)),
        ms(percentile(&in_process, 0.99)),
        ratio(&in_process, 0.5),
        ratio(&in_process, 0.99)
    );
    for (what, (median, commits, last)) in [("a ticket's commit", pages), ("over HTTP", http_pages)]
    {
        println!(
            "  {what:<22}  {median} pages of the WAL (median of the last {commits} commits); the last: {}",
            last.join(", ")
        );
    }
    println!(
        "HTTP round trip, no disk: p50 {:>7.3} ms   p99 {:>7.3} ms   (GET /api/v1/health through the core thread)",
        ms(percentile(&round_trip, 0.5)),
        ms(percentile(&round_trip, 0.99))
    );
    println!(
        "same exchange, no disk:   p50 {:>7.3} ms   p99 {:>7.3} ms   (the ticket's POST again with its retry key: answered from memory, nothing written)",
        ms(percentile(&replay, 0.5)),
        ms(percentile(&replay, 0.99))
    );
    println!(
        "durable ticket over HTTP: p50 {:>7.3} ms   p99 {:>7.3} ms   = {:.2}x / {:.2}x the bare insert (targets ≤1.5x / ≤3x)",
        ms(percentile(&seq, 0.5)),
        ms(percentile(&seq, 0.99)),
        ratio(&seq, 0.5),
        ratio(&seq, 0.99)
    );

    if let Some(text) = scrape(&agent, &daemon.url)
        && let (Some(t), Some(r), Some(h)) = (
            server_mean_ms(&text, "/api/v1/tickets", "POST", 201),
            server_mean_ms(&text, "/api/v1/tickets", "POST", 200),
            server_mean_ms(&text, "/api/v1/health", "GET", 200),
        )
    {
        println!(
            "  inside the daemon:      ticket {t:.3} ms, the same again {r:.3} ms, health {h:.3} ms (means, router to response; the rest is the network, hyper and the client)"
        );
    }
    let per_client = (opts.requests * 4 / opts.clients).max(100);
    let before = commit_totals(&agent, &daemon.url);
    let cpu_before = daemon.cpu_time();
    let started = Instant::now();
    let handles: Vec<_> = (0..opts.clients)
        .map(|c| {
            let url = daemon.url.clone();
            std::thread::spawn(move || {
                let agent = new_agent();
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    match issue_one(&agent, &url, &format!("conc-{c}-{i}")) {
                        Ok(d) => lat.push(d),
                        Err(e) => return Err(e),
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| BenchError::new("client thread panicked"))?
                .map_err(BenchError::new)?,
        );
    }
    let elapsed = started.elapsed();
    let concurrent_per_sec = all.len() as f64 / elapsed.as_secs_f64();
    all.sort();
    println!(
        "{} concurrent clients:     {:>10.0} durable tickets/s   p50 {:>7.3} ms   p99 {:>7.3} ms   (target ≥ 4000/s)",
        opts.clients,
        concurrent_per_sec,
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99))
    );
    if let (Some(a), Some(b)) = (cpu_before, daemon.cpu_time()) {
        println!(
            "  daemon CPU:             {:>10.3} ms a ticket (user and system, all threads)",
            ms(b.saturating_sub(a)) / all.len().max(1) as f64
        );
    }
    let mut concurrent_sync = Duration::ZERO;
    if let (Some(a), Some(b)) = (before, commit_totals(&agent, &daemon.url)) {
        let commits = (b[0] - a[0]).max(1.0);
        concurrent_sync = Duration::from_secs_f64((b[4] - a[4]).max(0.0) / commits);
        println!(
            "  group commit:           {:>10.2} tickets a transaction, {:.3} ms a transaction of which {:.3} ms its end (last writes and sync), {:.3} ms held for writers on their way",
            (b[1] - a[1]) / commits,
            (b[2] - a[2]) * 1000.0 / commits,
            ms(concurrent_sync),
            (b[3] - a[3]) * 1000.0 / commits
        );
    }
    match daemon.peak_rss_kib() {
        Some(kib) => println!(
            "daemon peak RSS:          {:>10.1} MB (target ≤ 25 MB)",
            kib as f64 / 1024.0
        ),
        None => println!("daemon peak RSS:          unavailable (no /proc)"),
    }
    drop(daemon);
    Ok(DiskFigures {
        bare_p50: percentile(&bare, 0.5),
        in_process_p50: percentile(&in_process, 0.5),
        floor_p50: percentile(&round_trip, 0.5),
        replay_p50: percentile(&replay, 0.5),
        http_p50: percentile(&seq, 0.5),
        http_p99: percentile(&seq, 0.99),
        concurrent_per_sec,
        concurrent_sync,
        fsync_p50: fsync,
    })
}

/// The issue-18 ratios: the HTTP ticket against bare insert plus the HTTP floor on the
/// plain disk, against the bare insert alone on the SD card, and the concurrent rate
/// on the SD card against `clients` commits per fsync time (what only group commit
/// reaches). Figures only; nothing here passes or fails.
fn print_ratios(plain: &DiskFigures, sd: Option<&DiskFigures>, clients: usize) {
    fn over(d: &DiskFigures, floor: Duration) -> f64 {
        times(d.http_p50, d.bare_p50 + floor)
    }
    println!(
        "plain disk: ticket over HTTP p50 / (bare insert + the same exchange without the disk) p50 = {:.2}x (issue 18: ≤ 1.25x)",
        over(plain, plain.replay_p50)
    );
    println!(
        "            with GET /api/v1/health as the floor instead: {:.2}x",
        over(plain, plain.floor_p50)
    );
    let Some(sd) = sd else { return };
    let sd_ratio = times(sd.http_p50, sd.bare_p50);
    let ideal = clients as f64 / sd.fsync_p50.as_secs_f64().max(1e-9);
    println!(
        "SD card:    ticket over HTTP p50 / bare insert p50 = {sd_ratio:.2}x (issue 18: ≤ 1.1x)"
    );
    println!(
        "            lowest the exchange allows: (bare insert + the same exchange without the disk) / bare insert = {:.2}x (the answer follows the sync: the exchange cannot overlap it)",
        times(sd.bare_p50 + sd.replay_p50, sd.bare_p50)
    );
    println!(
        "SD card:    {clients} clients {:.0} tickets/s / ({clients} / fsync {:.3} ms = {ideal:.0}/s) = {:.2}x (issue 18: ≥ 0.8x)",
        sd.concurrent_per_sec,
        ms(sd.fsync_p50),
        sd.concurrent_per_sec / ideal.max(1e-9)
    );
    // Each client waits for its answer: a round is one transaction's end plus the time
    // its answers take to go out and the next requests to come in and run.
    let allowed = sd.fsync_p50.mul_f64(1.25);
    println!(
        "            a round of {clients} took {:.3} ms, its transaction's end {:.3} ms; 0.8x allows {:.3} ms a round, which leaves {:.3} ms for {clients} answers out and {clients} requests in (one exchange without the disk: {:.3} ms)",
        1000.0 * clients as f64 / sd.concurrent_per_sec.max(1e-9),
        ms(sd.concurrent_sync),
        ms(allowed),
        ms(allowed.saturating_sub(sd.concurrent_sync)),
        ms(sd.replay_p50)
    );
    println!();
    println!("| figure (p50 unless said) | plain disk | SD card |");
    println!("|---|---|---|");
    let row = |what: &str, f: fn(&DiskFigures) -> String| {
        println!("| {what} | {} | {} |", f(plain), f(sd));
    };
    row("one fsync", |d| format!("{:.3} ms", ms(d.fsync_p50)));
    row("bare SQLite insert", |d| {
        format!("{:.3} ms", ms(d.bare_p50))
    });
    row("durable ticket, no HTTP", |d| {
        format!("{:.3} ms", ms(d.in_process_p50))
    });
    row("HTTP floor (GET /api/v1/health)", |d| {
        format!("{:.3} ms", ms(d.floor_p50))
    });
    row("same exchange, no disk (the ticket's POST retried)", |d| {
        format!("{:.3} ms", ms(d.replay_p50))
    });
    row("ticket over HTTP p50 / p99", |d| {
        format!("{:.3} / {:.3} ms", ms(d.http_p50), ms(d.http_p99))
    });
    row("concurrent clients, tickets/s", |d| {
        format!("{:.0}", d.concurrent_per_sec)
    });
    row("HTTP ticket / (bare + same exchange)", |d| {
        format!("{:.2}x", over(d, d.replay_p50))
    });
    row("HTTP ticket / (bare + health floor)", |d| {
        format!("{:.2}x", over(d, d.floor_p50))
    });
    row("HTTP ticket / bare", |d| {
        format!("{:.2}x", times(d.http_p50, d.bare_p50))
    });
    println!(
        "| {clients} clients / ({clients} / fsync) | {:.2}x | {:.2}x |",
        plain.concurrent_per_sec * plain.fsync_p50.as_secs_f64() / clients as f64,
        sd.concurrent_per_sec * sd.fsync_p50.as_secs_f64() / clients as f64
    );
}

/// Ticket committed → last byte written to a (virtual) serial printer on a
/// pseudo-terminal, against the same bytes' wire time at 9600 baud. A PTY has no baud
/// limit, so the figure is the controller's own delay: layout, the `DLE EOT` status
/// check before printing, the thread hand-off and the write.
fn printer_latency(exe: &Path, dir: &Path, n: usize) -> BenchResult<()> {
    use hallq_hardware::virtual_printer::{VirtualPrinter, VirtualPrinterHandle};
    use serialport::SerialPort;
    let (master, slave) = serialport::TTYPort::pair()?;
    let path = slave
        .name()
        .ok_or_else(|| BenchError::new("the pseudo-terminal has no path"))?;
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)?;
    let run_dir = dir.join("printer");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let config = write_config(&run_dir, "127.0.0.1:0", true)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "\n[printer]\npaper = \"80mm\"\n[printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 9600\n"
    ));
    std::fs::write(&config, text)?;
    let daemon = Daemon::start(exe, &config)?;
    let agent = new_agent();
    for i in 0..n {
        issue_one(&agent, &daemon.url, &format!("print-{i}")).map_err(BenchError::new)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let v: serde_json::Value = agent
            .get(format!("{}/api/v1/devices", daemon.url))
            .call()?
            .body_mut()
            .read_json()?;
        let stats = v["printer"]["stats"].clone();
        if stats["printed"].as_u64() >= Some(n as u64) || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut lat: Vec<Duration> = stats["recent_latency_us"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(Duration::from_micros)
                .collect()
        })
        .unwrap_or_default();
    lat.sort();
    let printed = stats["printed"].as_u64().unwrap_or(0);
    let bytes = stats["bytes"].as_u64().unwrap_or(0) / printed.max(1);
    let wire = Duration::from_secs_f64(bytes as f64 * 10.0 / 9600.0);
    println!(
        "printer (PTY): committed → last byte p50 {:>7.3} ms   p99 {:>7.3} ms   over {printed} tickets of {bytes} bytes; \
         the same bytes take {:.0} ms on a 9600-baud wire",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(wire)
    );
    drop(daemon);
    drop(printer);
    drop(slave);
    Ok(())
}
