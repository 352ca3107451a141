//! `hallq-lazyfs`: mounts the forgetful test filesystem (see the library's docs) and
//! waits. SIGUSR1 cuts the power (every unsynced write lost), SIGUSR2 cuts it in the
//! harsh mode given by `--harsh` (prefix or torn); SIGINT or SIGTERM unmounts and exits.
//! With `--control-stdin` it also takes one command a line on standard input and
//! answers each with one line (`cut lose|prefix|torn SEED`, `stats`, `delay MS`,
//! `quit`), and unmounts when its input closes; tests drive it so.
//! With `--fsync-delay-ms 2 --writeback-cache` it is an emulated SD card for
//! `hallq bench --sd-dir`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use std::io::{BufRead, Write};
use std::sync::Arc;

use hallq_lazyfs::{CutMode, LazyFs, Options, Server};

#[derive(Parser)]
#[command(
    name = "hallq-lazyfs",
    about = "A FUSE filesystem for tests that forgets unsynced writes on a simulated power cut",
    long_about = "Mounts an empty FUSE filesystem at MOUNTPOINT whose bytes live in --store. \
        Writes, creates, renames and unlinks are kept apart until fsync of the file (or of \
        its directory, for names). SIGUSR1 simulates a power cut that loses every unsynced \
        write; SIGUSR2 one in the --harsh mode (prefix: a random prefix of the unsynced \
        writes survives; torn: as prefix, and the next write is torn at a 512-byte sector \
        boundary). SIGINT/SIGTERM unmount and exit. Each cut is reported on stderr. With \
        --control-stdin: commands on stdin (cut lose|prefix|torn SEED, stats, delay MS, \
        quit), one answer line each on stdout, and end of input unmounts."
)]
struct Args {
    /// Where to mount (an existing, empty directory).
    mountpoint: PathBuf,
    /// The backing directory that holds the files' live and durable bytes (emptied).
    #[arg(long)]
    store: PathBuf,
    /// Milliseconds each fsync of a file or directory takes (an SD card: 2 to 5).
    #[arg(long, default_value_t = 0.0)]
    fsync_delay_ms: f64,
    /// Let the kernel cache writes and send them at fsync (FUSE's writeback cache):
    /// a write costs what it costs on a real disk's page cache. For benchmarks.
    #[arg(long)]
    writeback_cache: bool,
    /// The mode of a SIGUSR2 cut: prefix or torn.
    #[arg(long, default_value = "torn")]
    harsh: CutMode,
    /// Take commands on standard input; its end unmounts and exits.
    #[arg(long)]
    control_stdin: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("hallq-lazyfs: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    if let Some(what) = hallq_lazyfs::missing_prerequisite() {
        return Err(std::io::Error::other(format!("missing {what}")));
    }
    // Block the signals before any thread starts, then wait for them here.
    // SAFETY: plain signal-mask calls on a zeroed set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGINT, libc::SIGTERM] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::fs::create_dir_all(&args.store)?;
    let delay = Duration::from_secs_f64(args.fsync_delay_ms.max(0.0) / 1000.0);
    let fs = Arc::new(LazyFs::serve(
        &args.store,
        &args.mountpoint,
        Options {
            fsync_delay: delay,
            writeback_cache: args.writeback_cache,
        },
    )?);
    eprintln!(
        "hallq-lazyfs: mounted {} (store {}, fsync delay {:?}); SIGUSR1 cuts, SIGUSR2 cuts ({:?}), SIGTERM unmounts",
        args.mountpoint.display(),
        args.store.display(),
        delay,
        args.harsh
    );
    println!("mounted");
    let _ = std::io::stdout().flush();
    if args.control_stdin {
        let fs = fs.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let answer = command(&fs, line.trim());
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", answer.as_deref().unwrap_or("quit"));
                let _ = out.flush();
                if answer.is_none() {
                    break;
                }
            }
            // End of input or quit: wake the signal loop to unmount.
            // SAFETY: a signal to this very process.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        });
    }
    let mut seed = std::process::id() as u64;
    loop {
        let mut sig = 0;
        // SAFETY: waits on the signals blocked above.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        let mode = match sig {
            libc::SIGUSR1 => CutMode::Lose,
            libc::SIGUSR2 => args.harsh,
            _ => break,
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        match fs.cut(mode, seed) {
            Ok(r) => eprintln!(
                "hallq-lazyfs: power cut ({mode:?}, seed {seed}): {}",
                r.line()
            ),
            Err(e) => eprintln!("hallq-lazyfs: power cut failed: {e}"),
        }
    }
    let stats = fs.stats();
    match Arc::try_unwrap(fs) {
        Ok(fs) => fs.unmount()?,
        Err(fs) => drop(fs),
    }
    eprintln!("hallq-lazyfs: unmounted; {}", stats.line());
    Ok(())
}

/// One control command; `None` for quit.
fn command(fs: &Server, line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    Some(match words.as_slice() {
        ["quit"] => return None,
        ["stats"] => fs.stats().line(),
        ["delay", ms] => match ms.parse::<f64>() {
            Ok(ms) => {
                fs.set_fsync_delay(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
                "ok".into()
            }
            Err(_) => format!("error bad delay {ms:?}"),
        },
        ["cut", mode, seed] => match (mode.parse::<CutMode>(), seed.parse::<u64>()) {
            (Ok(m), Ok(s)) => match fs.cut(m, s) {
                Ok(r) => r.line(),
                Err(e) => format!("error {e}"),
            },
            (Err(e), _) => format!("error {e}"),
            (_, Err(_)) => format!("error bad seed {seed:?}"),
        },
        _ => format!("error unknown command {line:?}"),
    })
}
