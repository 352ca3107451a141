//! `hallq run`: open the database, restore the queue, bind, serve until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{AppState, app};
use crate::config::Config;
use crate::core::HallCore;
use crate::devices::health::Devices;
use crate::devices::printer::{PrinterError, Printers};
use crate::devices::voice::{self, Voice, VoiceError};
use crate::in_force::InForce;
use crate::store::{Store, StoreError};

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The printer could not be started.
    #[error(transparent)]
    Printer(#[from] PrinterError),
    /// The voice could not be started (its message names the bad clip or folder).
    #[error(transparent)]
    Voice(#[from] VoiceError),
    /// The hall's secret for personal identifiers could not be read or created.
    #[error(transparent)]
    HallKey(#[from] crate::personal::KeyError),
    /// An ID card reader's thread could not be started.
    #[error("cannot start the ID card reader thread: {0}")]
    IdReader(std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A started controller, before it serves.
pub struct Started {
    /// The hall core handle.
    pub hall: HallCore,
    /// The bound listener.
    pub listener: TcpListener,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    state: AppState,
    core: std::thread::JoinHandle<()>,
    buses: crate::devices::window::WindowBuses,
    voice: Option<Voice>,
    uplink: Option<crate::uplink::downstream::Running>,
}

/// Opens everything and binds; the caller then announces the address and calls `serve`.
pub async fn start(config: Config) -> Result<Started, StartError> {
    std::fs::create_dir_all(&config.storage.data_dir)
        .map_err(|e| StartError::DataDir(config.storage.data_dir.display().to_string(), e))?;
    let store = Store::open(&config.database())?;
    let shared = crate::uplink::Shared::load(store.conn())?;
    // The stored pushed setup is in force again before the first request.
    let file = InForce::file(config.queue.clone(), config.guide.clone());
    let in_force = crate::uplink::in_force_at_start(store.conn(), file)?;
    let utc_offset_minutes = in_force.setup.utc_offset_minutes;
    let near = config.phone.near_turn(config.uplink.is_some());
    let (hall, core) = HallCore::start_full(in_force, store, near, config.evaluation.clone())?;
    tokio::spawn(revoke_stale_sign_ins(hall.clone()));
    let devices = Devices::load(hall.clone())
        .await
        .map_err(|e| StoreError::Damaged(e.to_string()))?;
    // One thread per printer, each reporting its own health.
    let printers = Printers::start(&config.printer, &devices)?;
    // The window buses follow committed events on their own; kept to stop them at the end.
    let buses =
        crate::devices::window::start(&config.window_devices(), hall.clone(), devices.clone())
            .await;
    let voice = match config.voice.as_ref().filter(|v| v.enabled) {
        Some(v) => {
            let (voice, pack_health) = Voice::start(v, utc_offset_minutes, devices.clone())?;
            devices.report(voice::PACK_DEVICE, pack_health).await;
            voice.follow(&hall);
            Some(voice)
        }
        None => None,
    };
    let personal = crate::personal::PersonalKey::load_or_create(&config.storage.data_dir)?;
    let mut state = AppState::new(
        hall.clone(),
        Arc::new(config.clone()),
        devices,
        printers,
        personal,
    )?;
    state.voice = voice.clone();
    state.id_cards = crate::devices::id_reader::IdCards::new(
        &config.id_readers,
        Duration::from_secs(config.id_card.hold_secs),
    );
    for r in &config.id_readers {
        crate::devices::id_reader::start(
            r.clone(),
            state.id_cards.clone(),
            state.devices.clone(),
            state.personal.clone(),
        )
        .map_err(StartError::IdReader)?;
    }
    tokio::spawn(state.metrics.clone().follow(hall.subscribe()));
    tokio::spawn(state.sign_in.clone().flush(hall.clone()));
    // 预警纠错: warnings left unhandled go up to the hall server.
    tokio::spawn(crate::api::warnings::escalate_every(state.clone()));
    let mut shared = shared;
    shared.device_health = Some(crate::uplink::device_health(state.devices.clone()));
    state.uplink = shared.clone();
    let uplink = crate::uplink::downstream::start(
        &config,
        &hall,
        shared,
        crate::api::reprinter(state.clone()),
    )?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| StartError::Bind(config.server.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.server.listen, e))?;
    Ok(Started {
        hall,
        listener,
        addr,
        state,
        core,
        buses,
        voice,
        uplink,
    })
}

/// How long the server waits, after the stop signal, for open requests to finish
/// before it lets go of their connections.
const DRAIN: Duration = Duration::from_millis(1000);
/// How long the uplink gets to publish its offline state and disconnect.
const UPLINK_STOP: Duration = Duration::from_millis(400);
/// How long the core gets to commit its last batch (one fsync, normally a few ms).
const CORE_STOP: Duration = Duration::from_millis(400);

impl Started {
    /// Serves until `shutdown` resolves, then stops within about 2 s whatever clients
    /// are connected: live streams get a last `reconnect` event and end, the listener
    /// stops taking connections, open requests get [`DRAIN`] to finish, and the core
    /// commits everything it accepted before it stops. A request the core never
    /// accepted is never acknowledged, so nothing acknowledged is lost.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let closing = self.state.closing.clone();
        let signalled = closing.clone();
        let limits = self.state.config.server.limits.clone();
        let wanted = limits.files_needed();
        let got = crate::connections::raise_open_file_limit(wanted);
        if got < wanted {
            tracing::warn!(
                open_file_limit = got,
                wanted,
                "the open-file limit is below what [server.limits] needs; connections beyond it are refused to keep the reserve"
            );
        }
        let gate = crate::connections::Gate::new(limits);
        let server = crate::connections::serve(self.listener, app(self.state), gate, async move {
            shutdown.await;
            signalled.close();
        });
        tokio::pin!(server);
        let drained = tokio::select! {
            r = &mut server => { r?; true }
            _ = async { closing.wait().await; tokio::time::sleep(DRAIN).await } => false,
        };
        if !drained {
            tracing::warn!(
                after_ms = DRAIN.as_millis() as u64,
                "connections still open at shutdown; closing them"
            );
        }
        if let Some(u) = self.uplink
            && tokio::time::timeout(UPLINK_STOP, u.stop()).await.is_err()
        {
            tracing::warn!("the uplink did not disconnect in time");
        }
        self.buses.shutdown();
        // Everything the core accepted before this is committed; anything later (a
        // request on a connection given up above) is refused, never acknowledged.
        self.hall.close().await;
        drop(self.hall);
        let core = self.core;
        let joined =
            tokio::time::timeout(CORE_STOP, tokio::task::spawn_blocking(move || core.join())).await;
        if joined.is_err() {
            tracing::warn!("the core did not stop in time");
        }
        // The voice finishes the announcement playing on its own thread, which the
        // process exit ends; a call half spoken is not worth a hanging stop.
        let voice = self.voice;
        tokio::task::spawn_blocking(move || drop(voice));
        Ok(())
    }
}

/// How often the daemon looks for staff signed in at a window their account no longer
/// allows (an account changed by `hallq staff` beside it).
const ACCOUNT_CHECK: Duration = Duration::from_secs(2);

/// At start and then every [`ACCOUNT_CHECK`]: signs out whoever's account was disabled,
/// removed or re-windowed outside the daemon (changes on `/admin` sign out at once).
async fn revoke_stale_sign_ins(hall: HallCore) {
    let mut every = tokio::time::interval(ACCOUNT_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match hall.revoke_stale_sign_ins().await {
            Ok(events) => {
                for e in events {
                    tracing::info!(payload = %e.payload, "signed out: the account no longer allows this window");
                }
            }
            Err(crate::core::CoreError::Stopped) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not check staff sign-ins against their accounts")
            }
        }
    }
}

/// Logs to standard error, filtered by `HALLQ_LOG` (default `info`), without colour
/// codes unless standard error is a terminal: under systemd it goes to the journal.
/// The controller and the hall server log the same way.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HALLQ_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
