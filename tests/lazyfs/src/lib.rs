//! A FUSE filesystem for tests that forgets what was not synced, in the manner of Jepsen's
//! LazyFS.
//!
//! Every file's bytes live in a backing directory (the *store*), where reads, writes and
//! shared memory maps (SQLite's `-shm`) pass through. Beside each file's live bytes the
//! store keeps its *durable* bytes: what a disk would still hold after a power cut. A
//! write, a truncation, goes to the live bytes at once and is remembered in the file's
//! list of unsynced operations; `fsync`/`fdatasync` of the file applies that list to the
//! durable bytes. Names work the same way per directory: a create, mkdir, rename, unlink
//! or rmdir changes the live tree at once and is remembered in the directory's list, and
//! only `fsync` of the directory makes it durable. A file that was created, written and
//! fsynced but whose directory was never fsynced is gone after a cut.
//!
//! [`Mounted::cut`] simulates the power cut: the unsynced operations are discarded
//! ([`CutMode::Lose`]), or a random prefix of each list reaches the disk
//! ([`CutMode::Prefix`]), or a random prefix does and the write after it is torn at a
//! 512-byte sector boundary ([`CutMode::Torn`]: that write was the last to reach the
//! card, and only its first sectors did). The live tree is then rebuilt from the durable
//! one and every file handle open before the cut is dead (`EIO`); the processes that held
//! them are expected to be dead too.
//!
//! [`Options::fsync_delay`] makes every `fsync` of a file or a directory take that long
//! before it answers, as on an SD card where one flush costs milliseconds. The delay does
//! not hold up other requests.
//!
//! The filesystem starts empty and keeps its tree in memory: it is a test tool, not a
//! place to keep data. Hard links, symbolic links and special files are refused.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// The sector size at which [`CutMode::Torn`] tears a write.
pub const SECTOR: u64 = 512;

/// What survives a power cut of the unsynced operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutMode {
    /// Nothing unsynced survives.
    Lose,
    /// Of each file's and each directory's unsynced operations a random prefix survives
    /// (from none to all of them), as if the disk had written them in order and stopped.
    Prefix,
    /// As [`CutMode::Prefix`], and the write after the prefix is torn: a random number of
    /// its whole 512-byte sectors (counted from the file's start) reached the disk.
    Torn,
}

impl std::str::FromStr for CutMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lose" => Ok(CutMode::Lose),
            "prefix" => Ok(CutMode::Prefix),
            "torn" => Ok(CutMode::Torn),
            other => Err(format!("unknown cut mode {other:?} (lose, prefix or torn)")),
        }
    }
}

/// What a cut did, for the test's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Unsynced data operations (writes, truncations) discarded.
    pub ops_lost: usize,
    /// Unsynced data operations that reached the disk (prefix and torn modes).
    pub ops_kept: usize,
    /// Unsynced name operations (create, rename, unlink …) discarded.
    pub names_lost: usize,
    /// Unsynced name operations that reached the disk.
    pub names_kept: usize,
    /// Writes torn at a sector boundary, with (file offset, bytes kept of it).
    pub torn: Vec<(u64, u64)>,
}

/// Counters since the mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync`/`fdatasync` of files.
    pub fsyncs: u64,
    /// `fsync` of directories.
    pub dir_fsyncs: u64,
    /// Write requests.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Power cuts.
    pub cuts: u64,
}

/// How the filesystem is mounted.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// How long each `fsync` of a file or directory takes before it answers.
    pub fsync_delay: Duration,
    /// Let the kernel cache writes (FUSE's writeback cache) and send them in large
    /// batches, at the latest at `fsync`, instead of one request per `write(2)`: a
    /// write then costs what it costs on a disk's page cache, not a round trip to this
    /// process, which is what a benchmark of the emulated SD card needs. Meant for
    /// benchmarks: power cuts are only tested without it.
    pub writeback_cache: bool,
}

#[derive(Debug)]
enum Op {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
enum NameOp {
    Link(OsString, u64),
    Unlink(OsString),
    Rename(OsString, OsString),
}

#[derive(Debug)]
struct Node {
    dir: bool,
    perm: u16,
    /// Live name: (parent, name); `None` once unlinked.
    parent: Option<(u64, OsString)>,
    /// Unsynced data operations (files).
    pending: Vec<Op>,
    /// Index into `pending` of the last write of each (offset, length): a rewrite of
    /// the same range (SQLite's shared-memory pages) replaces the older one.
    by_range: HashMap<(u64, usize), usize>,
    mtime: SystemTime,
}

struct Handle {
    ino: u64,
    file: File,
}

struct State {
    store: PathBuf,
    nodes: HashMap<u64, Node>,
    live: HashMap<u64, BTreeMap<OsString, u64>>,
    durable: HashMap<u64, BTreeMap<OsString, u64>>,
    names_pending: HashMap<u64, Vec<NameOp>>,
    handles: HashMap<u64, Handle>,
    next_ino: u64,
    next_fh: u64,
    delay: Duration,
    stats: Stats,
}

/// How long the kernel may keep names and attributes: not at all, so that a cut's new
/// tree is what the next lookup sees.
const TTL: Duration = Duration::ZERO;
/// With the writeback cache the kernel owns sizes and times anyway, and asking this
/// process for them before every write would cost a round trip each.
const WRITEBACK_TTL: Duration = Duration::from_secs(60);
const ROOT: u64 = 1;

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl State {
    fn live_path(&self, ino: u64) -> PathBuf {
        self.store.join("live").join(ino.to_string())
    }

    fn durable_path(&self, ino: u64) -> PathBuf {
        self.store.join("durable").join(ino.to_string())
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let (size, blocks) = if node.dir {
            (0, 0)
        } else {
            let m = std::fs::metadata(self.live_path(ino)).map_err(|e| errno(&e))?;
            (m.size(), m.blocks())
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks,
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind: if node.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: node.perm,
            nlink: if node.dir { 2 } else { 1 },
            // SAFETY: geteuid/getegid cannot fail.
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.live.get(&parent)?.get(name).copied()
    }

    fn new_node(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u32) -> io::Result<u64> {
        let ino = self.next_ino;
        self.next_ino += 1;
        if !dir {
            File::create(self.live_path(ino))?;
            File::create(self.durable_path(ino))?;
        } else {
            self.live.insert(ino, BTreeMap::new());
            self.durable.insert(ino, BTreeMap::new());
        }
        self.nodes.insert(
            ino,
            Node {
                dir,
                perm: (mode & 0o7777) as u16,
                parent: Some((parent, name.to_owned())),
                pending: Vec::new(),
                by_range: HashMap::new(),
                mtime: SystemTime::now(),
            },
        );
        self.live
            .entry(parent)
            .or_default()
            .insert(name.to_owned(), ino);
        self.names_pending
            .entry(parent)
            .or_default()
            .push(NameOp::Link(name.to_owned(), ino));
        Ok(ino)
    }

    fn open_handle(&mut self, ino: u64, flags: i32) -> io::Result<u64> {
        let acc = flags & libc::O_ACCMODE;
        let file = OpenOptions::new()
            .read(true)
            .write(acc != libc::O_RDONLY)
            .open(self.live_path(ino))?;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, file });
        Ok(fh)
    }

    fn record(&mut self, ino: u64, op: Op) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.mtime = SystemTime::now();
        if let Op::Write { off, data } = &op {
            let key = (*off, data.len());
            if let Some(&i) = node.by_range.get(&key)
                && i + 1 == node.pending.len()
            {
                node.pending[i] = op;
                return;
            }
            node.by_range.insert(key, node.pending.len());
        } else {
            node.by_range.clear();
        }
        node.pending.push(op);
    }

    /// Applies a file's first `keep` unsynced operations to its durable bytes, and with
    /// `tear` the first `tear` bytes of the write after them.
    fn apply_ops(&mut self, ino: u64, keep: usize, tear: Option<u64>) -> io::Result<()> {
        let path = self.durable_path(ino);
        let Some(node) = self.nodes.get_mut(&ino) else {
            return Ok(());
        };
        let ops = std::mem::take(&mut node.pending);
        node.by_range.clear();
        if keep == 0 && tear.is_none() {
            return Ok(());
        }
        let f = OpenOptions::new().write(true).open(path)?;
        for op in &ops[..keep] {
            match op {
                Op::Write { off, data } => f.write_all_at(data, *off)?,
                Op::SetLen(n) => f.set_len(*n)?,
            }
        }
        if let (Some(n), Some(Op::Write { off, data })) = (tear, ops.get(keep)) {
            f.write_all_at(&data[..n as usize], *off)?;
        }
        Ok(())
    }

    fn apply_names(&mut self, dir: u64, keep: usize) {
        let ops = self.names_pending.remove(&dir).unwrap_or_default();
        let d = self.durable.entry(dir).or_default();
        for op in ops.into_iter().take(keep) {
            match op {
                NameOp::Link(name, ino) => {
                    d.insert(name, ino);
                }
                NameOp::Unlink(name) => {
                    d.remove(&name);
                }
                NameOp::Rename(from, to) => {
                    if let Some(ino) = d.remove(&from) {
                        d.insert(to, ino);
                    }
                }
            }
        }
    }

    fn cut(&mut self, mode: CutMode, rng: &mut Rng) -> io::Result<CutReport> {
        let mut report = CutReport::default();
        self.handles.clear();
        let mut dirs: Vec<u64> = self.names_pending.keys().copied().collect();
        dirs.sort();
        for dir in dirs {
            let n = self.names_pending[&dir].len();
            let keep = match mode {
                CutMode::Lose => 0,
                _ => rng.below(n as u64 + 1) as usize,
            };
            report.names_kept += keep;
            report.names_lost += n - keep;
            self.apply_names(dir, keep);
        }
        let mut dirty: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.pending.is_empty())
            .map(|(i, _)| *i)
            .collect();
        dirty.sort();
        for &ino in &dirty {
            let node = &self.nodes[&ino];
            let n = node.pending.len();
            let keep = match mode {
                CutMode::Lose => 0,
                _ => rng.below(n as u64 + 1) as usize,
            };
            let mut tear = None;
            if mode == CutMode::Torn
                && let Some(Op::Write { off, data }) = node.pending.get(keep)
            {
                // Sector boundaries strictly inside the write: b with off < b < end.
                let end = off + data.len() as u64;
                let first = (off / SECTOR + 1) * SECTOR;
                if first < end {
                    let count = (end - 1 - first) / SECTOR + 1;
                    let b = first + rng.below(count) * SECTOR;
                    tear = Some(b - off);
                    report.torn.push((*off, b - off));
                }
            }
            report.ops_kept += keep;
            report.ops_lost += n - keep;
            self.apply_ops(ino, keep, tear)?;
        }
        // The live tree becomes the durable one: names, then the bytes of every file
        // that had unsynced operations.
        self.live = self.durable.clone();
        let mut reachable: HashMap<u64, (u64, OsString)> = HashMap::new();
        let mut stack = vec![ROOT];
        while let Some(dir) = stack.pop() {
            let Some(entries) = self.durable.get(&dir) else {
                continue;
            };
            for (name, &ino) in entries {
                if reachable.contains_key(&ino) || ino == ROOT {
                    // A cross-directory rename half made durable: one name is enough.
                    if let Some(e) = self.live.get_mut(&dir) {
                        e.remove(name);
                    }
                    continue;
                }
                reachable.insert(ino, (dir, name.clone()));
                if self.nodes.get(&ino).is_some_and(|n| n.dir) {
                    stack.push(ino);
                }
            }
        }
        let gone: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|i| *i != ROOT && !reachable.contains_key(i))
            .collect();
        for ino in gone {
            if let Some(node) = self.nodes.remove(&ino) {
                if node.dir {
                    self.live.remove(&ino);
                    self.durable.remove(&ino);
                } else {
                    let _ = std::fs::remove_file(self.live_path(ino));
                    let _ = std::fs::remove_file(self.durable_path(ino));
                }
            }
        }
        for (ino, parent) in reachable {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = Some(parent);
                if !node.dir && dirty.binary_search(&ino).is_ok() {
                    std::fs::copy(self.store.join("durable").join(ino.to_string()), {
                        self.store.join("live").join(ino.to_string())
                    })?;
                }
            }
        }
        self.stats.cuts += 1;
        Ok(report)
    }
}

/// A small deterministic random source (xorshift64*), so that a seed replays a cut.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed odd number).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The filesystem, shared between the FUSE threads and the test's [`Mounted`] handle.
#[derive(Clone)]
pub struct LazyFs {
    state: Arc<Mutex<State>>,
    writeback_cache: bool,
}

impl LazyFs {
    fn ttl(&self) -> Duration {
        if self.writeback_cache {
            WRITEBACK_TTL
        } else {
            TTL
        }
    }

    /// With the writeback cache, an open keeps the kernel's cached pages: otherwise
    /// every open (SQLite's other connections open the WAL too) drops them, and each
    /// later write of part of a page first reads that page back through this process.
    fn open_flags(&self) -> FopenFlags {
        if self.writeback_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mounts a fresh, empty filesystem at `mountpoint` with its bytes in `store` (a
    /// directory that must exist; the filesystem uses its `live/` and `durable/`) and
    /// serves it from threads of this process.
    ///
    /// The process that serves must not itself map files of the mount (SQLite maps its
    /// `-shm`): unmapping a shared mapping writes its pages back through the server
    /// while holding the process's memory-map lock, which the server's own threads may
    /// need, and both wait for ever. Tests therefore run the server as its own process,
    /// the `hallq-lazyfs` binary, through [`Mounted::start`].
    pub fn serve(store: &Path, mountpoint: &Path, options: Options) -> io::Result<Server> {
        for sub in ["live", "durable"] {
            let d = store.join(sub);
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            std::fs::create_dir_all(&d)?;
        }
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                dir: true,
                perm: 0o755,
                parent: None,
                pending: Vec::new(),
                by_range: HashMap::new(),
                mtime: SystemTime::now(),
            },
        );
        let state = State {
            store: store.to_owned(),
            nodes,
            live: HashMap::from([(ROOT, BTreeMap::new())]),
            durable: HashMap::from([(ROOT, BTreeMap::new())]),
            names_pending: HashMap::new(),
            handles: HashMap::new(),
            next_ino: 2,
            next_fh: 1,
            delay: options.fsync_delay,
            stats: Stats::default(),
        };
        let fs = LazyFs {
            state: Arc::new(Mutex::new(state)),
            writeback_cache: options.writeback_cache,
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("hallq-lazyfs".into()),
            fuser::MountOption::Subtype("hallq-lazyfs".into()),
            fuser::MountOption::NoAtime,
        ];
        config.n_threads = Some(2);
        let session = fuser::spawn_mount(fs.clone(), mountpoint, &config)?;
        Ok(Server {
            fs,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }
}

/// A filesystem served by this process; dropping it unmounts (and, should the
/// session's own unmount fail, `fusermount3 -u -z`).
pub struct Server {
    fs: LazyFs,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl Server {
    /// Simulates a power cut (see [`CutMode`]); `seed` drives the random prefixes and
    /// tears. Processes that had files open on the filesystem should be dead first.
    pub fn cut(&self, mode: CutMode, seed: u64) -> io::Result<CutReport> {
        if self.fs.writeback_cache {
            // The kernel keeps names and attributes for a minute and writes cached
            // pages when it likes: what a cut leaves would not be what it reports.
            return Err(io::Error::other(
                "no power cuts with the writeback cache (it is for benchmarks)",
            ));
        }
        // Let the kernel write back dirty pages of shared maps first (they arrive as
        // writes, which then count as unsynced), and forget what it cached.
        if let Some(s) = &self.session {
            let inos: Vec<u64> = self.fs.state().nodes.keys().copied().collect();
            let notifier = s.notifier();
            for ino in inos {
                let _ = notifier.inval_inode(INodeNo(ino), 0, 0);
            }
        }
        let mut rng = Rng::new(seed);
        self.fs.state().cut(mode, &mut rng)
    }

    /// Changes how long each fsync takes.
    pub fn set_fsync_delay(&self, delay: Duration) {
        self.fs.state().delay = delay;
    }

    /// Counters since the mount.
    pub fn stats(&self) -> Stats {
        self.fs.state().stats.clone()
    }

    /// Unmounts, reporting a failure.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let result = session.umount_and_join();
        if result.is_err() || is_mounted(&self.mountpoint) {
            force_unmount(&self.mountpoint)?;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

fn force_unmount(mountpoint: &Path) -> io::Result<()> {
    let out = std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mountpoint)
        .output()?;
    if !out.status.success() && is_mounted(mountpoint) {
        return Err(io::Error::other(format!(
            "fusermount3 -u {}: {}",
            mountpoint.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The filesystem served by a `hallq-lazyfs` child process, driven over its standard
/// input and output (one command line, one answer line). Dropping it unmounts: the
/// child unmounts when told or when its input closes (this process died), and
/// `fusermount3 -u -z` runs should the mount still be there.
pub struct Mounted {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    mountpoint: PathBuf,
}

impl Mounted {
    /// Starts `exe` (the `hallq-lazyfs` binary) on `mountpoint` with its bytes in
    /// `store`, and waits until it has mounted.
    pub fn start(
        exe: &Path,
        store: &Path,
        mountpoint: &Path,
        options: Options,
    ) -> io::Result<Mounted> {
        use std::io::BufRead;
        std::fs::create_dir_all(store)?;
        std::fs::create_dir_all(mountpoint)?;
        let mut command = std::process::Command::new(exe);
        command
            .arg(mountpoint)
            .arg("--store")
            .arg(store)
            .arg("--fsync-delay-ms")
            .arg(format!("{}", options.fsync_delay.as_secs_f64() * 1000.0))
            .arg("--control-stdin");
        if options.writeback_cache {
            command.arg("--writeback-cache");
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let input = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let mut output = std::io::BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("no stdout"))?,
        );
        let mut line = String::new();
        output.read_line(&mut line)?;
        if line.trim() != "mounted" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{} did not mount {}: {:?}",
                exe.display(),
                mountpoint.display(),
                line.trim()
            )));
        }
        Ok(Mounted {
            child,
            input,
            output,
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    fn ask(&mut self, command: &str) -> io::Result<String> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{command}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let line = line.trim().to_string();
        match line.strip_prefix("error ") {
            Some(e) => Err(io::Error::other(format!("hallq-lazyfs {command}: {e}"))),
            None if line.is_empty() => Err(io::Error::other(format!(
                "hallq-lazyfs {command}: no answer (the filesystem process ended)"
            ))),
            None => Ok(line),
        }
    }

    /// Simulates a power cut (see [`CutMode`]); `seed` drives the random prefixes and
    /// tears. Processes that had files open on the filesystem should be dead first.
    pub fn cut(&mut self, mode: CutMode, seed: u64) -> io::Result<CutReport> {
        let mode = match mode {
            CutMode::Lose => "lose",
            CutMode::Prefix => "prefix",
            CutMode::Torn => "torn",
        };
        CutReport::parse(&self.ask(&format!("cut {mode} {seed}"))?)
    }

    /// Changes how long each fsync takes.
    pub fn set_fsync_delay(&mut self, delay: Duration) -> io::Result<()> {
        self.ask(&format!("delay {}", delay.as_secs_f64() * 1000.0))
            .map(drop)
    }

    /// Counters since the mount.
    pub fn stats(&mut self) -> io::Result<Stats> {
        Stats::parse(&self.ask("stats")?)
    }

    /// Unmounts, reporting a failure.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let asked = self.ask("quit");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait()? {
                Some(_) => break,
                None if std::time::Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        if is_mounted(&self.mountpoint) {
            force_unmount(&self.mountpoint)?;
        }
        asked.map(drop)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() || is_mounted(&self.mountpoint) {
            let _ = self.unmount_inner();
        }
    }
}

fn fields(line: &str, head: &str) -> io::Result<HashMap<String, String>> {
    let rest = line
        .strip_prefix(head)
        .ok_or_else(|| io::Error::other(format!("expected {head:?}, got {line:?}")))?;
    Ok(rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn num(f: &HashMap<String, String>, k: &str) -> u64 {
    f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl CutReport {
    /// The one-line form the binary answers with.
    pub fn line(&self) -> String {
        let torn: Vec<String> = self.torn.iter().map(|(o, k)| format!("{o}:{k}")).collect();
        format!(
            "cut ops_lost={} ops_kept={} names_lost={} names_kept={} torn={}",
            self.ops_lost,
            self.ops_kept,
            self.names_lost,
            self.names_kept,
            torn.join(",")
        )
    }

    fn parse(line: &str) -> io::Result<CutReport> {
        let f = fields(line, "cut ")?;
        let torn = f
            .get("torn")
            .map(|t| {
                t.split(',')
                    .filter_map(|p| p.split_once(':'))
                    .filter_map(|(o, k)| Some((o.parse().ok()?, k.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CutReport {
            ops_lost: num(&f, "ops_lost") as usize,
            ops_kept: num(&f, "ops_kept") as usize,
            names_lost: num(&f, "names_lost") as usize,
            names_kept: num(&f, "names_kept") as usize,
            torn,
        })
    }
}

impl Stats {
    /// The one-line form the binary answers with.
    pub fn line(&self) -> String {
        format!(
            "stats fsyncs={} dir_fsyncs={} writes={} bytes_written={} cuts={}",
            self.fsyncs, self.dir_fsyncs, self.writes, self.bytes_written, self.cuts
        )
    }

    fn parse(line: &str) -> io::Result<Stats> {
        let f = fields(line, "stats ")?;
        Ok(Stats {
            fsyncs: num(&f, "fsyncs"),
            dir_fsyncs: num(&f, "dir_fsyncs"),
            writes: num(&f, "writes"),
            bytes_written: num(&f, "bytes_written"),
            cuts: num(&f, "cuts"),
        })
    }
}

/// Whether `path` is a mount point now (from /proc/self/mounts).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path
        .canonicalize()
        .or_else(|_| Ok::<_, io::Error>(path.to_owned()))
    else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|p| Path::new(&p.replace("\\040", " ")) == canon)
        })
    })
}

/// What this machine lacks to mount the filesystem (`/dev/fuse`, `fusermount3`), by name.
pub fn missing_prerequisite() -> Option<&'static str> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        return Some("/dev/fuse (the fuse kernel module)");
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()));
    if !found {
        return Some("fusermount3 (Debian package fuse3)");
    }
    None
}

fn to_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for LazyFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> io::Result<()> {
        if self.writeback_cache {
            config
                .add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
                .map_err(|_| io::Error::other("the kernel offers no FUSE writeback cache"))?;
            // Up to 1 MiB a request, so one commit's pages reach the store in a few.
            let _ = config.set_max_write(1 << 20);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.state();
        match s.child(parent.0, name).map(|i| s.attr(i)) {
            Some(Ok(a)) => reply.entry(&self.ttl(), &a, Generation(0)),
            Some(Err(e)) => reply.error(e),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Ok(a) => reply.attr(&self.ttl(), &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let Some(node) = s.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(m) = mode {
            node.perm = (m & 0o7777) as u16;
        }
        if let Some(t) = mtime {
            node.mtime = to_time(t);
        }
        if let Some(n) = size {
            if node.dir {
                return reply.error(Errno::EISDIR);
            }
            let r = OpenOptions::new()
                .write(true)
                .open(s.live_path(ino.0))
                .and_then(|f| f.set_len(n));
            if let Err(e) = r {
                return reply.error(errno(&e));
            }
            s.record(ino.0, Op::SetLen(n));
        }
        match s.attr(ino.0) {
            Ok(a) => reply.attr(&self.ttl(), &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        if !s.nodes.get(&parent.0).is_some_and(|n| n.dir) {
            return reply.error(Errno::ENOENT);
        }
        if s.child(parent.0, name).is_some() {
            return reply.error(Errno::EEXIST);
        }
        match s.new_node(parent.0, name, true, mode & !umask) {
            Ok(ino) => match s.attr(ino) {
                Ok(a) => reply.entry(&self.ttl(), &a, Generation(0)),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        if !s.nodes.get(&parent.0).is_some_and(|n| n.dir) {
            return reply.error(Errno::ENOENT);
        }
        if s.child(parent.0, name).is_some() {
            return reply.error(Errno::EEXIST);
        }
        if mode & libc::S_IFMT != 0 && mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let made = s
            .new_node(parent.0, name, false, mode & !umask)
            .and_then(|ino| Ok((ino, s.open_handle(ino, flags)?)));
        match made {
            Ok((ino, fh)) => match s.attr(ino) {
                Ok(a) => reply.created(
                    &self.ttl(),
                    &a,
                    Generation(0),
                    FileHandle(fh),
                    self.open_flags(),
                ),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent.0, name, false, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent.0, name, true, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(ino) = s.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if !s.nodes.get(&newparent.0).is_some_and(|n| n.dir) {
            return reply.error(Errno::ENOENT);
        }
        let bits = flags.bits();
        if bits & !libc::RENAME_NOREPLACE != 0 {
            return reply.error(Errno::EINVAL);
        }
        if let Some(old) = s.child(newparent.0, newname) {
            if old == ino {
                return reply.ok();
            }
            if bits & libc::RENAME_NOREPLACE != 0 {
                return reply.error(Errno::EEXIST);
            }
            let (src_dir, dst_dir) = (s.nodes[&ino].dir, s.nodes[&old].dir);
            if dst_dir && !src_dir {
                return reply.error(Errno::EISDIR);
            }
            if src_dir && !dst_dir {
                return reply.error(Errno::ENOTDIR);
            }
            if dst_dir && s.live.get(&old).is_some_and(|e| !e.is_empty()) {
                return reply.error(Errno::ENOTEMPTY);
            }
            if let Some(n) = s.nodes.get_mut(&old) {
                n.parent = None;
            }
        }
        // A directory may not move under itself.
        let mut up = Some(newparent.0);
        while let Some(d) = up {
            if d == ino {
                return reply.error(Errno::EINVAL);
            }
            up = s.nodes.get(&d).and_then(|n| n.parent.as_ref().map(|p| p.0));
        }
        if let Some(e) = s.live.get_mut(&parent.0) {
            e.remove(name);
        }
        s.live
            .entry(newparent.0)
            .or_default()
            .insert(newname.to_owned(), ino);
        if let Some(n) = s.nodes.get_mut(&ino) {
            n.parent = Some((newparent.0, newname.to_owned()));
        }
        if parent == newparent {
            s.names_pending
                .entry(parent.0)
                .or_default()
                .push(NameOp::Rename(name.to_owned(), newname.to_owned()));
        } else {
            s.names_pending
                .entry(parent.0)
                .or_default()
                .push(NameOp::Unlink(name.to_owned()));
            s.names_pending
                .entry(newparent.0)
                .or_default()
                .push(NameOp::Link(newname.to_owned(), ino));
        }
        reply.ok()
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        match s.nodes.get(&ino.0) {
            None => return reply.error(Errno::ENOENT),
            Some(n) if n.dir => return reply.error(Errno::EISDIR),
            _ => {}
        }
        match s.open_handle(ino.0, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), self.open_flags()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let Some(h) = s.handles.get(&fh.0) else {
            return reply.error(Errno::EIO);
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match h.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..got])
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let Some(h) = s.handles.get(&fh.0) else {
            return reply.error(Errno::EIO);
        };
        let ino = h.ino;
        if let Err(e) = h.file.write_all_at(data, offset) {
            return reply.error(errno(&e));
        }
        s.stats.writes += 1;
        s.stats.bytes_written += data.len() as u64;
        s.record(
            ino,
            Op::Write {
                off: offset,
                data: data.to_vec(),
            },
        );
        reply.written(data.len() as u32)
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let keep = s.nodes.get(&ino.0).map_or(0, |n| n.pending.len());
        if let Err(e) = s.apply_ops(ino.0, keep, None) {
            return reply.error(errno(&e));
        }
        s.stats.fsyncs += 1;
        let delay = s.delay;
        drop(s);
        answer_later(delay, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = self.state();
        let Some(entries) = s.live.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let parent = s
            .nodes
            .get(&ino.0)
            .and_then(|n| n.parent.as_ref())
            .map_or(ROOT, |p| p.0);
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (parent, FileType::Directory, "..".into()),
        ];
        for (name, &child) in entries {
            let kind = if s.nodes.get(&child).is_some_and(|n| n.dir) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            all.push((child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let keep = s.names_pending.get(&ino.0).map_or(0, Vec::len);
        s.apply_names(ino.0, keep);
        s.stats.dir_fsyncs += 1;
        let delay = s.delay;
        drop(s);
        answer_later(delay, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.state();
        let files = s.nodes.len() as u64;
        // Whatever the store's own filesystem has free.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let path =
            std::ffi::CString::new(s.store.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: a valid NUL-terminated path and a zeroed out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            files,
            st.f_ffree,
            st.f_bsize as u32,
            255,
            st.f_frsize as u32,
        )
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if self.state().nodes.contains_key(&ino.0) {
            reply.ok()
        } else {
            reply.error(Errno::ENOENT)
        }
    }
}

impl LazyFs {
    fn remove(&self, parent: u64, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        let Some(ino) = s.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let is_dir = s.nodes.get(&ino).is_some_and(|n| n.dir);
        if dir && !is_dir {
            return reply.error(Errno::ENOTDIR);
        }
        if !dir && is_dir {
            return reply.error(Errno::EISDIR);
        }
        if is_dir && s.live.get(&ino).is_some_and(|e| !e.is_empty()) {
            return reply.error(Errno::ENOTEMPTY);
        }
        if let Some(e) = s.live.get_mut(&parent) {
            e.remove(name);
        }
        if let Some(n) = s.nodes.get_mut(&ino) {
            n.parent = None;
        }
        s.names_pending
            .entry(parent)
            .or_default()
            .push(NameOp::Unlink(name.to_owned()));
        reply.ok()
    }
}

/// Answers an fsync after `delay` without holding up the FUSE thread.
fn answer_later(delay: Duration, reply: ReplyEmpty) {
    if delay.is_zero() {
        return reply.ok();
    }
    let spawned = std::thread::Builder::new()
        .name("fsync-delay".into())
        .spawn(move || {
            std::thread::sleep(delay);
            reply.ok()
        });
    if let Err(e) = spawned {
        // The closure (and the reply in it) is gone with the error; the kernel then
        // sees the request fail when the reply is dropped.
        let _ = e;
    }
}
