//! `hallq`: the queue controller daemon and its command line. Thin by design: parse the
//! arguments, load the configuration, and hand over to the library.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hallq::config::Config;
use hallq::report::{Period, Report};
use hallq::store::Store;
use hallq::store::staff::{self, Permission};
use hallq_engine::Role;

const DEFAULT_CONFIG: &str = "/etc/hallq/hallq.toml";

#[derive(Parser)]
#[command(
    name = "hallq",
    version,
    about = "Queue controller for a government service hall (政务服务大厅排队叫号)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the controller: restore the queue, serve the local API until SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Simulate citizens and staff; without --config uses the example county hall
        /// in a temporary data directory. Also simulates the devices the file lacks: a
        /// ticket printer, the window screens, and an ID card reader at the kiosk (write
        /// "姓名 身份证号" into <data dir>/id-card to place a card, empty it to lift it).
        #[arg(long)]
        simulate: bool,
        /// Override the listen address (e.g. 127.0.0.1:0 for a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override the data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Simulation speed-up factor.
        #[arg(long, default_value_t = 1)]
        speed: u32,
        /// With --simulate: a virtual printer beside each of these kiosks or desks
        /// (comma-separated ids as they send in X-Kiosk-Id, e.g. kiosk-1,kiosk-2,desk),
        /// each a [[printer]] with that id serving it alone, in place of the
        /// configuration's printers. Without it a hall with no printer gets one virtual
        /// printer for every kiosk.
        #[arg(long, requires = "simulate", value_delimiter = ',', num_args = 1..)]
        virtual_printers: Vec<String>,
    },
    /// Manage staff accounts (no account exists until you add one; an account with the
    /// admin role can then also manage them on the /admin web page). Every change is an
    /// audit event naming who made it, committed with the change.
    Staff {
        #[command(subcommand)]
        action: StaffCmd,
        /// Configuration file.
        #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print per-window and per-service figures for a day, ISO week, month or range of
    /// days; with --staff the staff appraisal, with --table any table of the period view.
    Report {
        /// Configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A day, YYYY-MM-DD (default: today).
        #[arg(long, conflicts_with_all = ["week", "month"])]
        day: Option<chrono::NaiveDate>,
        /// An ISO week, YYYY-Www (e.g. 2026-W48).
        #[arg(long, conflicts_with = "month")]
        week: Option<String>,
        /// A month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// A range of days: the first, YYYY-MM-DD (with --to).
        #[arg(long, requires = "to", conflicts_with_all = ["day", "week", "month"])]
        from: Option<chrono::NaiveDate>,
        /// A range of days: the last, YYYY-MM-DD (with --from).
        #[arg(long, requires = "from")]
        to: Option<chrono::NaiveDate>,
        /// The staff appraisal (per staff member: calls, served, waits, service time,
        /// no-shows, ratings, satisfaction, time signed in) instead of windows and services.
        #[arg(long, conflicts_with = "table")]
        staff: bool,
        /// One table of the period view as CSV: hall, windows, services, departments,
        /// staff, hours, days or bad_ratings (what /supervision's period section shows).
        #[arg(long)]
        table: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Validate a configuration file and exit (errors name the key and line).
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Measure durable ticket issue, engine speed and memory on this machine.
    Bench {
        /// Directory for the benchmark databases (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Sequential requests.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Also time start-up against this many days of generated history.
        #[arg(long)]
        history_days: Option<u32>,
        /// Tickets per generated day.
        #[arg(long, default_value_t = 5500)]
        per_day: u32,
        /// Also measure on an emulated SD card: a directory mounted with
        /// `hallq-lazyfs --fsync-delay-ms 2 --writeback-cache`; prints both disks and the ratios side by side.
        #[arg(long)]
        sd_dir: Option<PathBuf>,
    },
    /// The uplink to the hall server.
    Uplink {
        #[command(subcommand)]
        action: UplinkCmd,
        /// Configuration file.
        #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Reference receiver: store controllers' events from a broker in SQLite, once
    /// each by event id, and report gaps in their sequences.
    Receive(ReceiveArgs),
    /// Copy the database to a file while the controller runs (a consistent snapshot).
    Backup {
        /// Configuration file naming the database.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The backup file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// The audit archive: events retention removed from the database, one compressed,
    /// checksummed file per month in the data directory's archive/ folder.
    Archive {
        #[command(subcommand)]
        action: ArchiveCmd,
        /// Configuration file naming the data directory.
        #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Write generated history into a new, empty database, for measuring start-up and
    /// the period views: working days (Monday to Friday) ending yesterday, shaped like a
    /// hall's (a morning peak, queues that build and drain, staff `H<window>` signed in
    /// at each window, a pause each, no-shows, transfers, ratings of every level).
    /// Refuses a database that holds any ticket or event; marks what it writes as
    /// generated, and the uplink never publishes it.
    #[command(group = clap::ArgGroup::new("target").required(true).args(["db", "config"]))]
    GenHistory {
        /// The database file to write (created if missing; must hold no ticket or event).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Or: a configuration file whose database receives the history (no default:
        /// the path is always given explicitly).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Working days of history, ending yesterday.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Tickets per day.
        #[arg(long, default_value_t = 5500)]
        per_day: u32,
        /// A hall of this many windows, each serving every service of the example hall
        /// (the load test's large hall is 200), instead of the example's windows; with
        /// --config, the configuration's services and windows are used instead.
        #[arg(long, conflicts_with = "config")]
        windows: Option<u32>,
    },
}

#[derive(Subcommand)]
enum UplinkCmd {
    /// Connection state, backlog size and the oldest undelivered event.
    Status {
        /// The daemon's API (default: the configured listen address).
        #[arg(long)]
        api: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drain a buffered backlog to a local mosquitto and measure the outbox's cost on
    /// ticket issue (needs /usr/sbin/mosquitto).
    Bench {
        /// Working directory.
        #[arg(long, default_value = "bench-uplink")]
        dir: PathBuf,
        /// Events in the backlog.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Sequential tickets per run (uplink off, then on).
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
    },
}

#[derive(Subcommand)]
enum ArchiveCmd {
    /// Read every archive file back (checksum, event count, order) and list its month,
    /// events and sequence range; exits non-zero if any file is damaged.
    Verify {
        /// An archive folder (a copy, say) instead of the configured one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StaffCmd {
    /// Add an account; the PIN (6–12 digits) is read from standard input.
    Add {
        /// Staff id (工号).
        #[arg(long)]
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Permissions: staff, desk (the guide desk), supervisor, admin (repeatable).
        #[arg(long = "role", default_value = "staff")]
        roles: Vec<String>,
        /// A window and role, e.g. 3 or 3:B (repeatable).
        #[arg(long = "window")]
        windows: Vec<String>,
    },
    /// List accounts (not removed ones), with `disabled` or `locked until …`.
    List,
    /// Disable an account: it cannot sign in, its sessions end now, and it is signed
    /// out of its window (by the running daemon within seconds, else at its start).
    Disable {
        /// Staff id.
        #[arg(long)]
        id: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Staff id.
        #[arg(long)]
        id: String,
    },
    /// Set a new PIN, read from standard input (never shown, never an argument); the
    /// account's sessions end.
    ResetPin {
        /// Staff id.
        #[arg(long)]
        id: String,
    },
    /// Lift the lockout after repeated wrong PINs.
    Unlock {
        /// Staff id.
        #[arg(long)]
        id: String,
    },
    /// Change roles and/or windows (each given list replaces the old one); sessions end,
    /// and it is signed out of a window no longer on its list.
    Set {
        /// Staff id.
        #[arg(long)]
        id: String,
        /// Permissions: staff, desk (the guide desk), supervisor, admin (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A window and role, e.g. 3 or 3:B (repeatable).
        #[arg(long = "window")]
        windows: Vec<String>,
    },
    /// Remove an account: it never signs in again and is signed out of its window; the
    /// audit trail keeps its id, which is never given to anyone else.
    Remove {
        /// Staff id.
        #[arg(long)]
        id: String,
    },
}

/// Who runs the CLI, for the audit trail: the login behind sudo, else the user.
fn cli_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn parse_roles(roles: &[String]) -> anyhow::Result<Vec<Permission>> {
    roles
        .iter()
        .map(|r| {
            Permission::parse(r)
                .with_context(|| format!("--role {r:?}: use staff, desk, supervisor or admin"))
        })
        .collect()
}

fn parse_windows(config: &Config, windows: &[String]) -> anyhow::Result<Vec<(u32, Role)>> {
    // The windows of the setup in force: a pushed one may have added some.
    let in_force = hallq::uplink::in_force_offline(
        &config.database(),
        config.queue.clone(),
        config.guide.clone(),
    )?;
    let mut parsed = Vec::new();
    for w in windows {
        let (n, role) = w.split_once(':').unwrap_or((w, "A"));
        let n: u32 = n
            .parse()
            .with_context(|| format!("--window {w:?}: expected a window number like 3 or 3:B"))?;
        if !in_force.has_window(n) {
            bail!("--window {w:?}: the setup in force has no window {n}");
        }
        let role = match role {
            "A" | "a" => Role::A,
            "B" | "b" => Role::B,
            _ => bail!("--window {w:?}: the role is A or B"),
        };
        parsed.push((n, role));
    }
    Ok(parsed)
}

fn read_pin(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
    }
    let mut pin = String::new();
    std::io::stdin().lock().read_line(&mut pin)?;
    Ok(pin.trim().to_string())
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line for the technician; no backtrace.
            eprintln!("hallq: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc's allocator, tuned for a small board: at most two arenas (not eight per core:
/// every blocking thread that ever ran would keep one), and every block of 1 MiB or
/// more mapped on its own and given back when freed (the sign-in's 7 MiB of Argon2
/// work among them), instead of the default threshold that grows to keep such blocks.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn real_main() -> anyhow::Result<()> {
    hallq::server::init_logging();
    match Cli::parse().command {
        Cmd::Run {
            config,
            simulate,
            listen,
            data_dir,
            speed,
            virtual_printers,
        } => run(
            config,
            Simulation {
                on: simulate,
                speed,
                virtual_printers,
            },
            listen,
            data_dir,
        ),
        Cmd::Staff { action, config } => staff_cmd(action, &Config::load(&config)?),
        Cmd::Report {
            config,
            day,
            week,
            month,
            from,
            to,
            staff,
            table,
            format,
        } => report(
            &Config::load(&config)?,
            ReportArgs {
                day,
                week,
                month,
                range: from.zip(to),
                staff,
                table,
                format,
            },
        ),
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Bench {
            dir,
            requests,
            clients,
            history_days,
            per_day,
            sd_dir,
        } => hallq::bench::run(&hallq::bench::BenchOptions {
            dir,
            requests,
            clients,
            history_days,
            per_day,
            sd_dir,
        })
        .map_err(Into::into),
        Cmd::Uplink { action, config } => uplink_cmd(action, &config),
        Cmd::Receive(args) => receive(args),
        Cmd::Backup { config, to } => {
            let c = Config::load(&config)?;
            let events = hallq::store::Store::backup(&c.database(), &to)?;
            println!(
                "backed up {} ({events} events) to {}",
                c.database().display(),
                to.display()
            );
            Ok(())
        }
        Cmd::Archive {
            action: ArchiveCmd::Verify { dir },
            config,
        } => archive_verify(match dir {
            Some(d) => d,
            None => hallq::store::archive::dir_in(&Config::load(&config)?.storage.data_dir),
        }),
        Cmd::GenHistory {
            db,
            config,
            days,
            per_day,
            windows,
        } => gen_history(db, config, days, per_day, windows),
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let c = Config::load(file)?;
    if let Some(v) = c.voice.as_ref().filter(|v| v.enabled) {
        v.load_pack()?;
    }
    println!(
        "{}: ok ({} services, {} windows, {} printers)",
        file.display(),
        c.queue.services.len(),
        c.queue.windows.len(),
        c.printer.iter().count()
    );
    for p in c.printer.iter() {
        let prints = if p.id.is_some() {
            format!("serves {}", p.serves.join(", "))
        } else {
            let prefixes = p.channels.clone().unwrap_or_else(|| vec!["kiosk".into()]);
            format!("prints channels starting {}", prefixes.join(" or "))
        };
        let paper = match p.paper {
            hallq_hardware::escpos::PaperWidth::Mm58 => "58 mm",
            hallq_hardware::escpos::PaperWidth::Mm80 => "80 mm",
        };
        println!(
            "  printer {} (device {}): {}, {paper}; {prints}",
            p.name(),
            p.device(),
            describe_transport(&p.transport),
        );
    }
    Ok(())
}

/// A printer's transport in a few words, for `check-config`.
fn describe_transport(t: &hallq_hardware::transport::TransportConfig) -> String {
    use hallq_hardware::transport::TransportConfig;
    match t {
        TransportConfig::Serial { path, baud, .. } => format!("serial {path} at {baud} baud"),
        TransportConfig::UsbLp { path } => format!("USB {}", path.display()),
        TransportConfig::Tcp { addr } => format!("TCP {addr}"),
    }
}

fn gen_history(
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    days: u32,
    per_day: u32,
    windows: Option<u32>,
) -> anyhow::Result<()> {
    let (db, setup) = match (db, config) {
        (Some(db), _) => (db, hallq::history::hall_of(windows)?),
        (None, Some(config)) => {
            let c = Config::load(&config)?;
            (c.database(), c.queue.clone())
        }
        (None, None) => bail!("give the database with --db FILE or --config FILE"),
    };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = std::time::Instant::now();
    let n = hallq::history::generate_history_for(&db, &setup, days, per_day)?;
    println!(
        "wrote {n} generated tickets over {days} working days at {} windows into {} in \
         {:.1} s (marked as generated: the uplink will not publish from it)",
        setup.windows.len(),
        db.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `run --simulate` adds to the hall.
struct Simulation {
    /// Simulated citizens and staff, virtual devices.
    on: bool,
    /// Speed-up factor.
    speed: u32,
    /// Kiosk and desk ids that each get a virtual printer of their own.
    virtual_printers: Vec<String>,
}

fn run(
    config_path: PathBuf,
    sim: Simulation,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (simulate, speed) = (sim.on, sim.speed);
    let explicit = config_path.as_path() != std::path::Path::new(DEFAULT_CONFIG) || !simulate;
    let mut temp = None;
    let mut config = if explicit {
        Config::load(&config_path)?
    } else {
        let dir = tempfile::Builder::new().prefix("hallq-sim-").tempdir()?;
        let mut c = Config::example();
        c.storage.data_dir = dir.path().to_path_buf();
        temp = Some(dir);
        c
    };
    // Kept alive for the whole run: the simulated hall's ticket printers.
    let mut virtual_printers = Vec::new();
    if simulate {
        // A demonstration must be alive at any hour.
        config.queue.calendar.always_open = true;
        if !sim.virtual_printers.is_empty() {
            let (handles, printers) = hallq::simulate::virtual_printers(&sim.virtual_printers)?;
            printers.check(None).map_err(|(key, message)| {
                anyhow::anyhow!("--virtual-printers: {key}: {message}")
            })?;
            config.printer = printers;
            virtual_printers = handles;
        } else if config.printer.is_empty() {
            let (handle, p) = hallq::simulate::virtual_printer()?;
            config.printer = hallq::devices::printer::PrintersConfig::Single(p);
            virtual_printers.push(handle);
        }
    }
    if let Some(l) = listen {
        config.server.listen = l;
    }
    if let Some(d) = data_dir {
        config.storage.data_dir = d;
    }
    // The simulated hall's ID card reader at the kiosk, kept alive for the run.
    let _id_reader = if simulate && config.id_readers.is_empty() {
        Some(hallq::simulate::id_reader(&mut config)?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let mut config = config;
        // The simulated hall's LED screens and hall board, kept alive for the run.
        let _window_sim = if simulate && config.buses.is_empty() {
            Some(hallq::simulate::window_bus(&mut config)?)
        } else {
            None
        };
        let data = config.storage.data_dir.clone();
        let started = hallq::server::start(config).await?;
        tracing::info!(addr = %started.addr, data = %data.display(), "hallq serving");
        // One line on stdout so scripts and tests can find the address.
        println!("hallq listening on http://{}", started.addr);
        std::io::stdout().flush()?;
        hallq::systemd::notify("READY=1");
        // Tasks that hold the core open; stopped first on shutdown so the core can
        // finish its last batch and exit.
        let mut helpers = vec![tokio::spawn(hallq::systemd::watchdog(started.hall.clone()))];
        if simulate {
            helpers.push(tokio::spawn(hallq::simulate::run(
                started.hall.clone(),
                speed,
            )));
        }
        started
            .serve(async move {
                hallq::server::shutdown_signal().await;
                hallq::systemd::notify("STOPPING=1");
                for h in helpers {
                    h.abort();
                }
            })
            .await?;
        drop(virtual_printers);
        drop(temp);
        anyhow::Ok(())
    });
    // Not the default drop, which waits for every blocking task however long it takes
    // (a voice clip being played, say): the stop must stay within systemd's patience.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn staff_cmd(action: StaffCmd, config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("creating {}", config.storage.data_dir.display()))?;
    let mut store = Store::open(&config.database())?;
    let now = hallq::core::wall_now();
    let Some((id, change)) = staff_change(action, config, &store)? else {
        return staff_list(&store, config, now);
    };
    // The change and its audit event, naming who made it (the login that ran the CLI),
    // commit in one transaction. A running daemon signs a disabled, removed or
    // re-windowed account out of its window within seconds (and a stopped one at start).
    let change = staff::AccountChange {
        staff: id.clone(),
        change,
        by: cli_user(),
        via: "cli".into(),
    };
    let kind = change.kind();
    store.change_account(&change, now, |_| Ok(Default::default()))?;
    println!(
        "{} {id}",
        kind.trim_start_matches("staff_").replace('_', " ")
    );
    Ok(())
}

/// The account change a `hallq staff` verb asks for (none for `list`).
fn staff_change(
    action: StaffCmd,
    config: &Config,
    store: &Store,
) -> anyhow::Result<Option<(String, staff::Change)>> {
    use staff::Change;
    Ok(Some(match action {
        StaffCmd::List => return Ok(None),
        StaffCmd::Add {
            id,
            name,
            roles,
            windows,
        } => {
            let roles = parse_roles(&roles)?;
            let windows = parse_windows(config, &windows)?;
            if roles == [Permission::Staff] && windows.is_empty() {
                bail!("a staff account needs at least one --window");
            }
            let pin = staff::PinHash::new(&read_pin(&format!("PIN for {id} (6-12 digits): "))?)?;
            let change = Change::Add {
                name,
                roles,
                windows,
                pin,
            };
            (id, change)
        }
        StaffCmd::Disable { id } => (id, Change::Disable),
        StaffCmd::Enable { id } => (id, Change::Enable),
        StaffCmd::ResetPin { id } => {
            staff::get(store.conn(), &id)?;
            let pin = read_pin(&format!("new PIN for {id} (6-12 digits): "))?;
            (id, Change::ResetPin(staff::PinHash::new(&pin)?))
        }
        StaffCmd::Unlock { id } => (id, Change::Unlock),
        StaffCmd::Set { id, roles, windows } => {
            if roles.is_empty() && windows.is_empty() {
                bail!("give --role and/or --window: each replaces the account's list");
            }
            let roles = (!roles.is_empty())
                .then(|| parse_roles(&roles))
                .transpose()?;
            let windows = (!windows.is_empty())
                .then(|| parse_windows(config, &windows))
                .transpose()?;
            (id, Change::Set { roles, windows })
        }
        StaffCmd::Remove { id } => (id, Change::Remove),
    }))
}

fn staff_list(store: &Store, config: &Config, now: hallq_engine::Timestamp) -> anyhow::Result<()> {
    for a in staff::accounts(store.conn(), now)? {
        let s = a.record;
        let windows: Vec<String> = s
            .windows
            .iter()
            .map(|(n, r)| format!("{n}:{r:?}"))
            .collect();
        let roles: Vec<String> = s
            .roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        let mut state = Vec::new();
        if a.disabled_at.is_some() {
            state.push("disabled".to_string());
        }
        if let Some(until) = a.locked_until {
            let local = hallq_engine::LocalClock::new(config.queue.utc_offset_minutes)
                .local(hallq_engine::Timestamp(until));
            state.push(format!("locked until {}", local.format("%H:%M")));
        }
        println!(
            "{}\t{}\t{}\t{}\t{}",
            s.id,
            s.name,
            roles.join(","),
            windows.join(","),
            if state.is_empty() {
                "active".to_string()
            } else {
                state.join(", ")
            }
        );
    }
    Ok(())
}

fn archive_verify(dir: PathBuf) -> anyhow::Result<()> {
    let files = hallq::store::archive::verify_dir(&dir)?;
    if files.is_empty() {
        println!(
            "{}: no archive files (nothing has passed retention)",
            dir.display()
        );
        return Ok(());
    }
    let (mut events, mut bad) = (0u64, 0usize);
    for f in &files {
        match f {
            Ok(m) => {
                events += m.events;
                println!(
                    "{}  {:>9} events  seq {}-{}  ok  {}",
                    m.month,
                    m.events,
                    m.first_seq.map_or("-".into(), |s| s.to_string()),
                    m.last_seq.map_or("-".into(), |s| s.to_string()),
                    m.path.display()
                );
            }
            Err(e) => {
                bad += 1;
                println!("DAMAGED  {e}");
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} archive files damaged", files.len());
    }
    println!("{} files, {events} events, all verified", files.len());
    Ok(())
}

/// What `hallq report` was asked for.
struct ReportArgs {
    day: Option<chrono::NaiveDate>,
    week: Option<String>,
    month: Option<String>,
    range: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    staff: bool,
    table: Option<String>,
    format: Format,
}

fn report(config: &Config, a: ReportArgs) -> anyhow::Result<()> {
    let in_force = hallq::uplink::in_force_offline(
        &config.database(),
        config.queue.clone(),
        config.guide.clone(),
    )?;
    let setup = &in_force.setup;
    let period = match (a.day, a.week, a.month, a.range) {
        (_, _, _, Some((from, to))) => Period::range(from, to).with_context(|| {
            format!(
                "--from {from} --to {to}: the last day must not come before the first, \
                 at most {} days",
                hallq::report::period::MAX_DAYS
            )
        })?,
        (_, Some(w), _, _) => Period::week(&w)
            .with_context(|| format!("--week {w:?}: use YYYY-Www, e.g. 2026-W48"))?,
        (_, _, Some(m), _) => {
            Period::month(&m).with_context(|| format!("--month {m:?}: use YYYY-MM"))?
        }
        (Some(d), _, _, _) => Period::day(d),
        (None, None, None, None) => {
            let clock = hallq_engine::LocalClock::new(setup.utc_offset_minutes);
            Period::day(clock.service_day(hallq::core::wall_now(), setup.day_starts_at))
        }
    };
    if !config.database().exists() {
        bail!(
            "no database at {} (has the controller run?)",
            config.database().display()
        );
    }
    let mut store = Store::open(&config.database())?;
    if a.staff || a.table.is_some() {
        let rules = hallq::store::figures::Rules::of(setup);
        // Builds the figures of a database from before they existed (once).
        store.set_figure_rules(rules.clone())?;
        let view =
            hallq::report::period::build(store.conn(), setup, period, hallq::core::wall_now().0)?;
        let table = a.table.as_deref().unwrap_or("staff");
        match (a.format, a.table.is_some()) {
            (Format::Table, false) => print!("{}", view.staff_table()),
            _ => print!(
                "{}",
                view.csv(table, &rules).with_context(|| format!(
                    "--table {table:?}: use one of {}",
                    hallq::report::period::TABLES.join(", ")
                ))?
            ),
        }
        return Ok(());
    }
    let r: Report = hallq::report::build(store.conn(), period)?;
    match a.format {
        Format::Table => print!("{}", r.to_table()),
        Format::Csv => print!("{}", r.to_csv()),
    }
    Ok(())
}

fn uplink_cmd(action: UplinkCmd, config: &std::path::Path) -> anyhow::Result<()> {
    match action {
        UplinkCmd::Status { api, json } => {
            let c = Config::load(config)?;
            if !c.database().exists() {
                bail!(
                    "no database at {} (has the controller run?)",
                    c.database().display()
                );
            }
            let v = hallq::uplink::status_report(&c, api.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", hallq::uplink::status_text(&v));
            }
            Ok(())
        }
        UplinkCmd::Bench {
            dir,
            events,
            requests,
            clients,
        } => hallq::uplink::bench::run(&hallq::uplink::bench::UplinkBenchOptions {
            dir,
            events,
            requests,
            clients,
        })
        .map_err(Into::into),
    }
}

/// `hallq receive`'s options.
#[derive(clap::Args)]
struct ReceiveArgs {
    /// Broker, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// The receiver's database.
    #[arg(long, default_value = "received.db")]
    db: PathBuf,
    /// Topic filter.
    #[arg(long, default_value = "hallq/+/+/events")]
    topic: String,
    /// Client id (the broker keeps a session for it while away).
    #[arg(long, default_value = "hallq-receiver")]
    client_id: String,
    /// CA for a TLS broker.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// User name; the password is read from HALLQ_BROKER_PASSWORD.
    #[arg(long)]
    username: Option<String>,
    /// Print what is stored (counts, gaps, duplicates) and exit.
    #[arg(long)]
    report: bool,
    /// Post each near-turn text message (topic `…/sms` beside --topic) to this HTTP
    /// endpoint as JSON, once per message, as a hall server hands them to its SMS
    /// provider; the number is erased from the receiver's database once posted.
    #[arg(long, value_name = "URL")]
    sms_webhook: Option<String>,
    /// Repair gaps: when a controller's sequence has a gap open this many seconds, ask
    /// it to send the events again (the `resend` command on its `cmd` topic, from the
    /// first missing seq; up to 3 times, 30 s apart). Needs the right to publish there.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    repair_after: Option<u64>,
}

fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    use hallq::uplink::receive;
    let ReceiveArgs {
        broker,
        db,
        topic,
        client_id,
        ca,
        cert,
        key,
        username,
        report,
        sms_webhook,
        repair_after,
    } = args;
    let conn = receive::open_db(&db).with_context(|| format!("opening {}", db.display()))?;
    if report {
        print!("{}", receive::summarize(&conn)?.to_text());
        return Ok(());
    }
    let (host, port) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--broker {broker:?}: use HOST:PORT"))?;
    let credentials = match username {
        Some(u) => Some((
            u,
            std::env::var("HALLQ_BROKER_PASSWORD")
                .context("--username needs the password in HALLQ_BROKER_PASSWORD")?,
        )),
        None => None,
    };
    let opts = receive::ReceiveOptions {
        host,
        port,
        topic: topic.clone(),
        client_id,
        tls: ca.map(|ca| hallq::uplink::settings::TlsFiles { ca, cert, key }),
        credentials,
        sms: match sms_webhook {
            Some(url) => {
                anyhow::ensure!(
                    url.starts_with("http://"),
                    "--sms-webhook {url:?}: give an http:// address (the SMS relay beside the hall server)"
                );
                Some(receive::SmsWebhook {
                    topic: receive::SmsWebhook::topic_beside(&topic),
                    url,
                    db: db.clone(),
                })
            }
            None => None,
        },
        repair_after: repair_after.map(std::time::Duration::from_secs),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(receive::run(
        opts,
        conn,
        || {
            println!("receiving {topic} from {broker}");
            let _ = std::io::stdout().flush();
        },
        hallq::server::shutdown_signal(),
    ))?;
    let conn = receive::open_db(&db)?;
    print!("{}", receive::summarize(&conn)?.to_text());
    Ok(())
}
