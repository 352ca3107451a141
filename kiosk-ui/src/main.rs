//! `hallq-kiosk`: the touch kiosk. Thin: parse the settings, load the CJK font, open the
//! window (winit on a desktop, KMS/DRM on the board), hand over to the kiosk logic.
//!
//! Both backends are compiled in and Slint picks one when the window opens:
//! `SLINT_BACKEND=linuxkms-software` on the board (the packaged unit sets it),
//! `SLINT_BACKEND=winit` on a desktop; unset, winit is tried first and linuxkms is the
//! fallback where no display server runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hallq_kiosk::catalogue::Language;
use hallq_kiosk::client::Endpoint;
use hallq_kiosk::{App, Settings};
use slint::ComponentHandle;

/// Touch kiosk of a hallq service hall.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The controller's address; a second kiosk in the hall points at the same one.
    #[arg(
        long,
        env = "HALLQ_CONTROLLER",
        default_value = "http://127.0.0.1:8080"
    )]
    controller: String,
    /// This kiosk's id, recorded on its tickets (`X-Kiosk-Id`).
    #[arg(long, env = "HALLQ_KIOSK_ID", default_value = "kiosk-1")]
    kiosk_id: String,
    /// Kiosk key, needed when the controller is on another machine.
    #[arg(long, env = "HALLQ_KIOSK_KEY")]
    kiosk_key: Option<String>,
    /// Language at start and after the idle timeout: zh-CN, zh-TW or en.
    #[arg(long, env = "HALLQ_KIOSK_LANG", default_value = "zh-CN")]
    language: String,
    /// Seconds untouched before returning home.
    #[arg(long, env = "HALLQ_KIOSK_IDLE_SECS", default_value_t = 60)]
    idle_secs: u64,
    /// Longest wait for one answer from the controller, in seconds.
    #[arg(long, default_value_t = 4)]
    timeout_secs: u64,
    /// A CJK font file (.ttf/.ttc/.otf); by default the usual Debian locations are tried.
    #[arg(long, env = "HALLQ_KIOSK_FONT")]
    font: Option<PathBuf>,
    /// Lock the kiosk with this reason shown (e.g. maintenance).
    #[arg(long)]
    locked: Option<String>,
    /// The hall's offset from UTC in minutes, for the clock (China: 480).
    #[arg(long, default_value_t = 480, allow_negative_numbers = true)]
    utc_offset_minutes: i32,
    /// Landscape 1920×1080 instead of portrait 1080×1920 (for the desktop window).
    #[arg(long)]
    landscape: bool,
}

fn main() -> anyhow::Result<()> {
    // As the controller: HALLQ_LOG sets the filter; under systemd stderr goes to the
    // journal, where colour codes are noise.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HALLQ_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let default_language = Language::parse(&cli.language)
        .with_context(|| format!("--language {}: use zh-CN, zh-TW or en", cli.language))?;
    if cli.idle_secs < 5 {
        anyhow::bail!("--idle-secs {}: at least 5 seconds", cli.idle_secs);
    }
    let app = App::new().context("cannot open the kiosk window")?;
    if let Err(e) = hallq_kiosk::fonts::load_cjk(cli.font.as_deref()) {
        // Chinese would be blank: say so loudly, but still show what can be shown.
        tracing::error!("{e}");
    }
    let (w, h) = if cli.landscape {
        (1920, 1080)
    } else {
        (1080, 1920)
    };
    app.window().set_size(slint::PhysicalSize::new(w, h));
    let settings = Settings {
        endpoint: Endpoint {
            base: cli.controller,
            kiosk_id: cli.kiosk_id,
            kiosk_key: cli.kiosk_key,
            timeout: Duration::from_secs(cli.timeout_secs.max(1)),
        },
        default_language,
        idle_timeout: Duration::from_secs(cli.idle_secs),
        refresh_every: Duration::from_secs(15),
        hall_name: String::new(),
        locked_reason: cli.locked,
        utc_offset_minutes: cli.utc_offset_minutes,
    };
    let logic = hallq_kiosk::attach(app, settings);
    logic.app().run().context("the kiosk's event loop failed")?;
    Ok(())
}
