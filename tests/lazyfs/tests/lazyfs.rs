//! The forgetful filesystem itself: what survives a power cut and what does not, and
//! SQLite in WAL mode on it. Each test mounts its own instance in a temp directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hallq_lazyfs::{CutMode, Mounted, Options, SECTOR};

/// Mounts a fresh filesystem, or (outside CI) skips the test when the machine cannot.
fn mount(dir: &Path, options: Options) -> Option<Mounted> {
    if let Some(what) = hallq_lazyfs::missing_prerequisite() {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let test = std::thread::current()
            .name()
            .unwrap_or("lazyfs")
            .to_string();
        if ci {
            panic!("{test}: prerequisite missing: {what} (CI=true: a missing prerequisite fails)");
        }
        let line = format!("SKIPPED {test}: {what} (outside CI; with CI=true this fails)\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(log) = std::env::var_os("HALLQ_SKIP_LOG")
            && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log)
        {
            let _ = f.write_all(line.as_bytes());
        }
        return None;
    }
    let store = dir.join("store");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    Some(
        Mounted::start(
            Path::new(env!("CARGO_BIN_EXE_hallq-lazyfs")),
            &store,
            &mnt,
            options,
        )
        .expect("mount"),
    )
}

fn read(path: &Path) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path).ok()?.read_to_end(&mut v).ok()?;
    Some(v)
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn a_synced_write_survives_a_cut_and_an_unsynced_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    let mut f = File::create(m.join("a")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_all().unwrap();
    sync_dir(m);
    f.write_all(b" and lost").unwrap();
    let mut g = File::create(m.join("b")).unwrap();
    g.write_all(b"never synced").unwrap();
    drop((f, g));
    assert_eq!(read(&m.join("a")).unwrap(), b"synced and lost");
    let r = fs.cut(CutMode::Lose, 1).unwrap();
    assert_eq!(read(&m.join("a")).unwrap(), b"synced", "{r:?}");
    assert!(
        !m.join("b").exists(),
        "a file created without a directory fsync survived"
    );
    assert!(r.ops_lost >= 2 && r.names_lost == 1, "{r:?}");
    // fdatasync counts the same as fsync.
    let f = OpenOptions::new().write(true).open(m.join("a")).unwrap();
    f.write_all_at(b"SY", 0).unwrap();
    f.sync_data().unwrap();
    drop(f);
    fs.cut(CutMode::Lose, 2).unwrap();
    assert_eq!(read(&m.join("a")).unwrap(), b"SYnced");
    fs.unmount().unwrap();
}

#[test]
fn a_file_synced_in_a_directory_never_synced_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    let mut f = File::create(m.join("c")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs.cut(CutMode::Lose, 3).unwrap();
    assert!(!m.join("c").exists());
    // With the directory synced it stays, and a truncation not synced is undone.
    let mut f = File::create(m.join("c")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    sync_dir(m);
    f.set_len(1).unwrap();
    drop(f);
    fs.cut(CutMode::Lose, 4).unwrap();
    assert_eq!(read(&m.join("c")).unwrap(), b"data");
}

#[test]
fn a_rename_without_a_directory_fsync_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    std::fs::create_dir(m.join("etc")).unwrap();
    sync_dir(m);
    let conf = m.join("etc/hall.toml");
    let tmp = m.join("etc/hall.toml.tmp");
    for (text, dir_sync) in [("old", true), ("new", false)] {
        let mut f = File::create(&tmp).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
        drop(f);
        std::fs::rename(&tmp, &conf).unwrap();
        if dir_sync {
            sync_dir(&m.join("etc"));
        }
    }
    assert_eq!(read(&conf).unwrap(), b"new");
    fs.cut(CutMode::Lose, 5).unwrap();
    assert_eq!(
        read(&conf).unwrap(),
        b"old",
        "the rename without a directory fsync survived"
    );
    assert!(!tmp.exists(), "the temp file came back");
    // Unlink without a directory fsync is undone too.
    std::fs::remove_file(&conf).unwrap();
    fs.cut(CutMode::Lose, 6).unwrap();
    assert_eq!(read(&conf).unwrap(), b"old");
    // And with the fsync the rename holds.
    let mut f = File::create(&tmp).unwrap();
    f.write_all(b"newer").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, &conf).unwrap();
    sync_dir(&m.join("etc"));
    fs.cut(CutMode::Lose, 7).unwrap();
    assert_eq!(read(&conf).unwrap(), b"newer");
}

#[test]
fn the_torn_mode_tears_a_write_at_a_sector_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    let path = m.join("t");
    let f = File::create(&path).unwrap();
    f.sync_all().unwrap();
    sync_dir(m);
    let mut torn_seen = 0;
    for seed in 1..40u64 {
        // One unsynced write of 8 sectors and a bit, starting mid-sector.
        let off = 100u64;
        let data = vec![0xAB_u8; 8 * SECTOR as usize + 77];
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(0).unwrap();
        f.sync_all().unwrap();
        f.write_all_at(&data, off).unwrap();
        drop(f);
        let r = fs.cut(CutMode::Torn, seed).unwrap();
        let got = read(&path).unwrap();
        // Whatever reached the disk is the start of the write, byte for byte.
        assert!(got.len() <= (off as usize + data.len()));
        assert!(got.len() <= off as usize || got[off as usize..].iter().all(|b| *b == 0xAB));
        assert!(got[..(off as usize).min(got.len())].iter().all(|b| *b == 0));
        match r.torn.as_slice() {
            [] => {}
            [(o, kept)] => {
                // The kernel may split the write in pages: the tear is in one of them.
                let end = o + kept;
                assert_eq!(end % SECTOR, 0, "seed {seed}: tear at {end}");
                assert!(*kept > 0);
                assert_eq!(got.len() as u64, end, "seed {seed}: {r:?}");
                torn_seen += 1;
            }
            more => panic!("one file, several tears: {more:?}"),
        }
    }
    assert!(torn_seen > 5, "only {torn_seen} tears in 39 cuts");
}

#[test]
fn the_prefix_mode_keeps_writes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    let path = m.join("log");
    File::create(&path).unwrap().sync_all().unwrap();
    sync_dir(m);
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 1..30u64 {
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(0).unwrap();
        f.sync_all().unwrap();
        for i in 0..10u8 {
            f.write_all(&[b'0' + i; 10]).unwrap();
        }
        drop(f);
        fs.cut(CutMode::Prefix, seed).unwrap();
        let got = read(&path).unwrap();
        assert_eq!(got.len() % 10, 0);
        for (i, chunk) in got.chunks(10).enumerate() {
            assert_eq!(chunk, &[b'0' + i as u8; 10], "seed {seed}: out of order");
        }
        lengths.insert(got.len());
    }
    assert!(lengths.len() > 3, "prefixes seen: {lengths:?}");
}

#[test]
fn sqlite_in_wal_mode_keeps_what_it_committed_with_synchronous_full_and_loses_it_with_off() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), Options::default()) else {
        return;
    };
    let m = &fs.path().to_owned();
    let db = m.join("hall.db");
    let open = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c
    };
    {
        let c = open();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
        // A second connection reads through the shared memory file as the first writes.
        let reader = rusqlite::Connection::open(&db).unwrap();
        for n in 0..50 {
            c.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
            let seen: i64 = reader
                .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, n + 1);
        }
        // The database file's name was never made durable by SQLite itself (it syncs
        // the directory for the WAL, not the main file): the owner must.
        sync_dir(m);
    }
    // The connections closed (the last one checkpoints); the power goes.
    let r = fs.cut(CutMode::Lose, 8).unwrap();
    {
        let c = open();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50, "committed rows lost with synchronous=FULL ({r:?})");
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        c.pragma_update(None, "synchronous", "OFF").unwrap();
        for n in 50..80 {
            c.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
        }
    }
    fs.cut(CutMode::Lose, 9).unwrap();
    let c = open();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50, "synchronous=OFF commits should be lost by a cut");
}

#[test]
fn the_fsync_delay_slows_each_fsync_not_each_write() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(
        dir.path(),
        Options {
            fsync_delay: Duration::from_millis(5),
            ..Options::default()
        },
    ) else {
        return;
    };
    let m = &fs.path().to_owned();
    let mut f = File::create(m.join("d")).unwrap();
    let t = Instant::now();
    for _ in 0..20 {
        f.write_all(&[1; 100]).unwrap();
    }
    let writes = t.elapsed();
    let t = Instant::now();
    for _ in 0..20 {
        f.write_all(&[2; 100]).unwrap();
        f.sync_data().unwrap();
    }
    let synced = t.elapsed();
    eprintln!("20 writes {writes:?}; 20 write+fsync at 5 ms {synced:?}");
    assert!(synced >= Duration::from_millis(100), "{synced:?}");
    assert_eq!(fs.stats().unwrap().fsyncs, 20);
}

#[test]
fn with_the_writeback_cache_many_writes_reach_the_store_in_few_requests_and_fsync_makes_them_durable()
 {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(
        dir.path(),
        Options {
            writeback_cache: true,
            ..Options::default()
        },
    ) else {
        return;
    };
    let m = fs.path().to_owned();
    let mut f = File::create(m.join("wal")).unwrap();
    sync_dir(&m);
    // As SQLite appends WAL frames: a 24-byte header and a 4 KiB page, 16 times.
    let mut expected = Vec::new();
    for i in 0..16u8 {
        let header = [i; 24];
        let page = vec![i.wrapping_add(100); 4096];
        f.write_all(&header).unwrap();
        f.write_all(&page).unwrap();
        expected.extend_from_slice(&header);
        expected.extend_from_slice(&page);
    }
    let before = fs.stats().unwrap();
    f.sync_data().unwrap();
    let after = fs.stats().unwrap();
    assert_eq!(after.fsyncs, before.fsyncs + 1);
    assert!(
        after.writes <= 8,
        "32 write(2) calls should arrive as a few large requests, got {}",
        after.writes
    );
    assert_eq!(after.bytes_written as usize, expected.len());
    // What fsync made durable is what a power cut would leave.
    let ino = std::os::unix::fs::MetadataExt::ino(&f.metadata().unwrap());
    let durable = dir.path().join("store/durable").join(ino.to_string());
    assert_eq!(read(&durable).as_deref(), Some(&expected[..]));
    drop(f);
    // A cut is refused: the kernel's cache would make its report a lie.
    assert!(fs.cut(CutMode::Lose, 1).is_err());
}
