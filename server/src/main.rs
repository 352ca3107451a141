//! `hallq-server`: the county's hall server (see the library's documentation and
//! `docs/hall-server.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hallq_server::config::ServerConfig;

/// The hall server of a county: every hallq controller's events, through the MQTT
/// broker, into PostgreSQL, exactly once, with gaps found and asked for again.
#[derive(Parser)]
#[command(name = "hallq-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// `--config`, for every subcommand.
#[derive(clap::Args)]
struct ConfigFile {
    /// The configuration file.
    #[arg(long, default_value = "/etc/hallq-server/hallq-server.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an instance: ingest (with the period figures and follow-ups), gap repair,
    /// pushes from above sent again until answered, and the web listener (the county
    /// dashboard at /, the JSON API, the citizens' ticket pages at /t/{token}); with
    /// `[sms]` the near-turn text messages to the webhook, with `[export] dir` the
    /// previous day's 好差评 files every day. Start several with the same broker, database and
    /// `broker.share_group` (and each its own `server.name`) to share the load.
    Run {
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Check a configuration file; an error names the line and the key.
    CheckConfig {
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Create or update the database schema and make the months of `events` ahead,
    /// then exit (`run` does both too).
    Migrate {
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Write one day's 好差评 records in the provincial platform's shape:
    /// `ratings-<day>.jsonl` and `ratings-<day>.csv` in `--out`, each field as
    /// `[export.fields]` maps it (the record's own fields without it). `run` writes the
    /// previous day's by itself when `[export] dir` is set.
    ExportRatings {
        #[command(flatten)]
        file: ConfigFile,
        /// The day, YYYY-MM-DD, in the halls' time (`[export] utc_offset`, +08:00).
        #[arg(long)]
        day: chrono::NaiveDate,
        /// Only the halls of this region and the regions below it (a 12-digit code
        /// listed under `[[region]]`); every hall without it.
        #[arg(long)]
        region: Option<String>,
        /// The directory the two files are written to (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// The people who sign in to the dashboard: each with a role over one region (and
    /// everything below it). Every change is recorded in the audit table.
    Account {
        #[command(flatten)]
        file: ConfigFile,
        #[command(subcommand)]
        action: AccountCmd,
    },
    /// The months of the events table: PostgreSQL partitions of `events` by month of the
    /// event's time (UTC), `events_YYYY_MM`, and `events_default` for rows of a month
    /// without one. `run` makes the current month and `[database] months_ahead` more by
    /// itself; list them with their rows, or drop old months whole with their keys.
    Partitions {
        #[command(flatten)]
        file: ConfigFile,
        #[command(subcommand)]
        action: PartitionsCmd,
    },
}

#[derive(Subcommand)]
enum PartitionsCmd {
    /// List the partitions of `events` as JSON lines: name, month, from and to (ms, UTC),
    /// whether it is the default, whether still attached, and its rows (counted: this
    /// reads every row; `--estimate` for PostgreSQL's estimate).
    List {
        /// Rows as PostgreSQL estimates them (quick on big months) instead of counted.
        #[arg(long)]
        estimate: bool,
    },
    /// Detach and drop whole months before a given one, with their rows' keys (the
    /// exactly-once keys), and delete those months' rows from `events_default`; each
    /// controller's gap repair is moved past the seqs dropped, so they are never asked
    /// for again. Never the current month. Keep a month first with `pg_dump -t
    /// events_YYYY_MM` if it is to be archived. Prints one JSON line per table.
    Drop {
        /// Keep the current month and this many before it; drop every month older
        /// (0: every month before the current one).
        #[arg(
            long,
            value_name = "MONTHS",
            required_unless_present = "before",
            conflicts_with = "before"
        )]
        older_than: Option<u32>,
        /// Drop the months before this one, YYYY-MM (refused if later than the current
        /// month).
        #[arg(long, value_name = "YYYY-MM")]
        before: Option<String>,
        /// Only count what would be dropped.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create an account; the password is read from standard input (one line).
    Add {
        /// Login name: letters, digits, '.', '_' or '-'.
        login: String,
        /// The person's name.
        #[arg(long)]
        name: String,
        /// viewer (watches), supervisor (also acts on halls) or admin.
        #[arg(long)]
        role: String,
        /// The 12-digit code of the region they see (listed under [[region]]).
        #[arg(long)]
        region: String,
    },
    /// Set a new password (from standard input); the account's sessions end.
    Password {
        /// Login name.
        login: String,
    },
    /// Lift a lockout after wrong passwords.
    Unlock {
        /// Login name.
        login: String,
    },
    /// Stop an account from signing in; its sessions end.
    Disable {
        /// Login name.
        login: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// Login name.
        login: String,
    },
    /// Remove an account and its sessions (the audit keeps its history).
    Remove {
        /// Login name.
        login: String,
    },
    /// List the accounts as JSON lines.
    List,
}

/// The password, one line from standard input (a pipe, or typed).
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn account(config: &ServerConfig, action: AccountCmd) -> anyhow::Result<()> {
    use hallq_server::auth::{self, Change, Role};
    let by = format!(
        "cli:{}",
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "root".into())
    );
    let now = hallq_server::now_ms();
    cli_runtime()?.block_on(async {
        let db = migrated(&config.database.url).await?;
        let (login, change) = match action {
            AccountCmd::Add {
                login,
                name,
                role,
                region,
            } => {
                let role = Role::parse(&role)
                    .with_context(|| format!("--role {role}: use viewer, supervisor or admin"))?;
                let password = read_password()?;
                auth::add(
                    &db,
                    &config.regions,
                    &login,
                    &name,
                    role,
                    &region,
                    &password,
                    &by,
                    now,
                )
                .await?;
                println!("account {login} added");
                return anyhow::Ok(());
            }
            AccountCmd::List => {
                for a in auth::list(&db, now).await? {
                    println!("{}", serde_json::to_string(&a)?);
                }
                return anyhow::Ok(());
            }
            AccountCmd::Password { login } => (login, Change::Password(read_password()?)),
            AccountCmd::Unlock { login } => (login, Change::Unlock),
            AccountCmd::Disable { login } => (login, Change::Disable),
            AccountCmd::Enable { login } => (login, Change::Enable),
            AccountCmd::Remove { login } => (login, Change::Remove),
        };
        auth::change(&db, &login, change, &by, now).await?;
        println!("account {login}: done");
        anyhow::Ok(())
    })
}

fn partitions(config: &ServerConfig, action: PartitionsCmd) -> anyhow::Result<()> {
    use hallq_server::partitions::{self, Month};
    let now = hallq_server::now_ms();
    cli_runtime()?.block_on(async {
        let mut db = migrated(&config.database.url).await?;
        match action {
            PartitionsCmd::List { estimate } => {
                for p in partitions::list(&db, !estimate).await? {
                    println!("{}", serde_json::to_string(&p)?);
                }
            }
            PartitionsCmd::Drop {
                older_than,
                before,
                dry_run,
            } => {
                let current = Month::of(now).context("the clock is outside 1970 … 9999")?;
                let before = match (older_than, before) {
                    (_, Some(text)) => Month::parse(&text)
                        .with_context(|| format!("--before {text}: not a month YYYY-MM"))?,
                    (Some(n), None) => current.plus(-i64::from(n)),
                    (None, None) => anyhow::bail!("--older-than or --before is needed"),
                };
                for d in partitions::drop_before(&mut db, before, now, dry_run).await? {
                    println!("{}", serde_json::to_string(&d)?);
                }
            }
        }
        anyhow::Ok(())
    })
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hallq-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The runtime of a CLI command that talks to the database.
fn cli_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// A connection to the database, its schema brought up to date (a CLI command may run
/// before any instance has started).
async fn migrated(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut db = hallq_server::db::connect(url, std::time::Duration::ZERO).await?;
    hallq_server::db::migrate(&mut db).await?;
    Ok(db)
}

fn real_main() -> anyhow::Result<()> {
    hallq::server::init_logging();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")
    };
    match Cli::parse().command {
        Cmd::CheckConfig {
            file: ConfigFile { config },
        } => {
            let c = ServerConfig::load(&config)?;
            let sms = match &c.sms {
                Some(s) => format!("text messages to {}", s.webhook_url),
                None => "no SMS webhook".into(),
            };
            let export = match &c.export.dir {
                Some(d) => format!("好差评 files daily at {} into {}", c.export.at, d.display()),
                None => "no daily 好差评 files".into(),
            };
            println!(
                "{}: ok ({} regions, {} halls; {sms}; {export})",
                config.display(),
                c.regions.len(),
                c.halls.len()
            );
            Ok(())
        }
        Cmd::Migrate {
            file: ConfigFile { config },
        } => {
            let c = ServerConfig::load(&config)?;
            rt()?.block_on(async {
                let mut db =
                    hallq_server::db::connect(&c.database.url, std::time::Duration::ZERO).await?;
                let n = hallq_server::db::migrate(&mut db).await?;
                println!("{n} step(s) applied");
                // The months ahead, and those of rows waiting in the default (logged).
                hallq_server::partitions::keep(
                    &mut db,
                    c.database.months_ahead,
                    &hallq_server::partitions::Months::default(),
                )
                .await;
                anyhow::Ok(())
            })
        }
        Cmd::Account {
            file: ConfigFile { config },
            action,
        } => account(&ServerConfig::load(&config)?, action),
        Cmd::Partitions {
            file: ConfigFile { config },
            action,
        } => partitions(&ServerConfig::load(&config)?, action),
        Cmd::ExportRatings {
            file: ConfigFile { config },
            day,
            region,
            out,
        } => {
            let c = ServerConfig::load(&config)?;
            let visible = match &region {
                None => None,
                Some(code) if c.regions.iter().any(|r| &r.code == code) => {
                    hallq_server::export::halls_of_region(&c.halls, code)
                }
                Some(code) => anyhow::bail!(
                    "--region {code}: not a region listed under [[region]] in {}",
                    config.display()
                ),
            };
            let settings = c.export_settings();
            let rated = rt()?.block_on(async {
                let db =
                    hallq_server::db::connect(&c.database.url, std::time::Duration::ZERO).await?;
                hallq_server::export::day_ratings(&db, &settings, day, visible.as_deref()).await
            })?;
            let w = hallq_server::export::write_day(&out, &settings, day, &rated)
                .with_context(|| format!("writing into {}", out.display()))?;
            let files: Vec<String> = w.files.iter().map(|f| f.display().to_string()).collect();
            println!("{} ratings: {}", w.ratings, files.join(", "));
            Ok(())
        }
        Cmd::Run {
            file: ConfigFile { config },
        } => {
            let c = ServerConfig::load(&config)?;
            rt()?.block_on(hallq_server::serve(
                c,
                |addr| tracing::info!("listening on http://{addr}"),
                hallq::server::shutdown_signal(),
            ))
        }
    }
}
