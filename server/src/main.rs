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
    /// Run an instance: ingest, gap repair and the web listener. Start several with
    /// the same broker, database and `broker.share_group` (and each its own
    /// `server.name`) to share the load.
    Run {
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Check a configuration file; an error names the line and the key.
    CheckConfig {
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Create or update the database schema, then exit (`run` does it too).
    Migrate {
        #[command(flatten)]
        file: ConfigFile,
    },
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
            println!(
                "{}: ok ({} regions, {} halls)",
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
                anyhow::Ok(())
            })
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
