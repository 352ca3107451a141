//! How long from a committed call to the first audio sample handed to the sink.
//!
//! ```text
//! cargo run --release -p hallq --example voice_latency [-- CALLS]
//! ```
//!
//! Runs the real hall core on a SQLite file in a temporary folder and the real voice
//! (shipped pack, files sink, then `aplay` on ALSA's `null` device when installed), calls
//! CALLS tickets one after another and prints, per sink:
//! - commit → first sample: from the committed `ticket_called` event reaching the voice
//!   to the first samples written to the sink (the figure the issue asks for);
//! - request → first sample: from sending CallNext to the core, durable commit included;
//! - baseline: the durable CallNext round trip alone, measured in the same run, with the
//!   ratio of the voice's own share to it;
//! - with one clip missing from the pack: espeak-ng's first (cold) and later (cached) cost.

use hallq::bench::{ms, percentile_of};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hallq::config::Config;
use hallq::core::HallCore;
use hallq::devices::voice::{Voice, VoiceConfig};
use hallq::in_force::InForce;
use hallq::store::Store;
use hallq_engine::{Class, Command, Role};
use hallq_voice::pack::source_tree_pack_dir;
use hallq_voice::{Pack, Report};

struct Sample {
    request_to_first: Duration,
    commit_to_first: Duration,
    durable: Duration,
}

async fn run(
    label: &str,
    section: &str,
    pack: Pack,
    espeak: Option<std::path::PathBuf>,
    calls: usize,
) -> anyhow::Result<Vec<Sample>> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::example();
    config.queue.calendar.always_open = true;
    config.queue.per_citizen_daily_limit = None;
    for s in &mut config.queue.services {
        s.daily_cap = None;
        s.quota = None;
    }
    let store = Store::open(&dir.path().join("hallq.db"))?;
    let in_force = InForce::file(config.queue.clone(), config.guide.clone());
    let (hall, core) = HallCore::start(in_force, store)?;
    let section = section.replace("{dir}", &dir.path().join("out").display().to_string());
    let voice_config: VoiceConfig = toml::from_str(&section)?;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let voice = Voice::start_observed(&voice_config, 480, pack, espeak, move |r| {
        if let Report::Played {
            received, result, ..
        } = r
        {
            let _ = tx
                .lock()
                .unwrap()
                .send((received, result.map(|p| p.first_sample)));
        }
    })?;
    voice.follow(&hall);
    let window = config.queue.windows[0].number;
    let service = config.queue.windows[0].services[0].code.clone();
    let staff = "BENCH".to_string();
    hall.execute(Command::SignIn {
        window,
        staff: staff.clone(),
        role: Role::A,
    })
    .await?;
    let mut out = Vec::new();
    for _ in 0..calls {
        hall.execute(Command::Issue {
            token_hash: None,
            service: service.clone(),
            class: Class::Normal,
            idempotency_key: None,
            citizen: None,
            channel: "bench".into(),
            green_reason: None,
            proxy: false,
            issued_by: None,
        })
        .await?;
        let t0 = Instant::now();
        hall.execute(Command::CallNext {
            window,
            staff: staff.clone(),
        })
        .await?;
        let t1 = Instant::now();
        let (received, first) =
            tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(30)))?;
        let first = first.map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        out.push(Sample {
            request_to_first: first - t0,
            commit_to_first: first - received,
            durable: t1 - t0,
        });
        hall.execute(Command::StartServing {
            window,
            staff: staff.clone(),
        })
        .await?;
        hall.execute(Command::Finish {
            window,
            staff: staff.clone(),
            case_no: None,
        })
        .await?;
    }
    drop(voice);
    drop(hall);
    let _ = core.join();
    Ok(out)
}

fn print(label: &str, s: &[Sample]) {
    let commit: Vec<Duration> = s.iter().map(|x| x.commit_to_first).collect();
    let request: Vec<Duration> = s.iter().map(|x| x.request_to_first).collect();
    let durable: Vec<Duration> = s.iter().map(|x| x.durable).collect();
    let (c50, d50) = (
        percentile_of(commit.clone(), 0.5),
        percentile_of(durable.clone(), 0.5),
    );
    println!("{label} ({} calls)", s.len());
    for (name, v) in [
        ("  commit → first sample", &commit),
        ("  request → first sample", &request),
        ("  baseline: durable CallNext", &durable),
    ] {
        println!(
            "{name:32} p50 {:7.2} ms  p95 {:7.2} ms  max {:7.2} ms",
            ms(percentile_of(v.clone(), 0.5)),
            ms(percentile_of(v.clone(), 0.95)),
            ms(percentile_of(v.clone(), 1.0)),
        );
    }
    println!(
        "  voice's share vs the durable commit (p50): {:.2}×",
        c50.as_secs_f64() / d50.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50);
    let pack = Pack::load(&source_tree_pack_dir())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let files = "sink = \"files\"\ndir = \"{dir}\"\npace = false\nrepeat = 2\n";
        let s = run("files", files, pack.clone(), None, calls).await?;
        print("files sink, shipped pack", &s);
        let aplay = std::process::Command::new("aplay").arg("--version").output();
        if aplay.is_ok_and(|o| o.status.success()) {
            let alsa = "sink = \"alsa\"\ndevice = \"null\"\nrepeat = 2\n";
            let s = run("alsa", alsa, pack.clone(), None, calls).await?;
            print("aplay sink (ALSA null device), shipped pack", &s);
        } else {
            println!("aplay not installed: ALSA sink not measured");
        }
        let s = run(
            "espeak",
            files,
            pack.clone().without("zh.chuangkou"),
            Some("espeak-ng".into()),
            calls.min(20),
        )
        .await?;
        println!(
            "files sink, pack without 窗口 (espeak-ng speaks it): first call {:.2} ms, later p50 {:.2} ms (cached)",
            ms(s[0].commit_to_first),
            ms(percentile_of(s[1..].iter().map(|x| x.commit_to_first).collect(), 0.5)),
        );
        anyhow::Ok(())
    })
}
