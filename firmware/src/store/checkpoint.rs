//! WAL checkpoints off the commit path. By default SQLite checkpoints inside whichever
//! commit pushes the WAL past 1,000 pages: that one commit then copies pages into the
//! database file and fsyncs it, and the citizen whose ticket it was waits several times
//! as long as everyone else. The core turns that off for its connection and this
//! thread, on a connection of its own, copies committed pages across every quarter of a
//! second instead (`PASSIVE`: it never blocks the writer or readers). Durability does
//! not change: a commit is durable once its WAL frames are synced, checkpoint or not.
//!
//! The log starts over from its beginning only when a write begins while every frame in
//! it is already in the database file. Under steady load a passive pass never gets
//! there (the writer adds frames while it copies), and the log would grow for as long
//! as the load lasts: every commit then extends the file, and syncing a file whose size
//! changed costs a journal commit on top of the data (measured: 0.24–0.30 ms against
//! 0.16–0.20 ms a commit on this VM's ext4). So once the log holds [`RESTART_FRAMES`],
//! this thread asks the writer ([`Store::restart_log_if_due`]) to copy the few frames
//! added since its pass, between two batches; its next commit then starts the log over,
//! and the file keeps its size from then on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use super::{Store, StoreError};

/// How often committed pages are copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);

/// Frames in the log (4 KiB pages; SQLite's own automatic checkpoint is at 1,000) beyond
/// which the writer is asked to let it start over.
pub const RESTART_FRAMES: i64 = 1000;

/// Hands checkpointing of `store`'s database to a thread that runs until `stop` is
/// dropped (then checkpoints once more). Without a file (in-memory store) or when the
/// second connection cannot be opened, SQLite's own automatic checkpoints stay on.
pub fn spawn(
    store: &Store,
    stop: Receiver<()>,
) -> Result<Option<std::thread::JoinHandle<()>>, StoreError> {
    let Some(path) = store.path() else {
        return Ok(None);
    };
    let conn = match open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint connection; commits checkpoint themselves");
            return Ok(None);
        }
    };
    store.conn().pragma_update(None, "wal_autocheckpoint", 0)?;
    let restart = store.log_restart.clone();
    let handle = std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || run(&conn, &stop, &restart))
        .map_err(|e| StoreError::Damaged(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Some(handle))
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Syncs the database file after copying, as SQLite's own checkpoints do.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

fn run(conn: &Connection, stop: &Receiver<()>, restart: &Arc<AtomicBool>) {
    // A full disk fails every attempt until space is freed: say so once, and once more
    // when it works again, rather than four times a second.
    let mut failing: Option<String> = None;
    loop {
        let last = matches!(
            stop.recv_timeout(INTERVAL),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        );
        match checkpoint(conn) {
            Ok((log, _)) => {
                if log >= RESTART_FRAMES {
                    restart.store(true, Ordering::Relaxed);
                }
                if failing.take().is_some() {
                    tracing::info!("WAL checkpoints work again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if failing.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                    failing = Some(e);
                }
            }
        }
        if last {
            break;
        }
    }
}

/// One passive checkpoint; returns the frames in the WAL and how many are now in the
/// database file.
pub fn checkpoint(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let (_busy, log, done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((log, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_leave_checkpointing_to_the_thread_which_empties_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hallq.db");
        let store = Store::open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = spawn(&store, rx)
            .unwrap()
            .expect("a thread for a file store");
        let auto: i64 = store
            .conn()
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "commits no longer checkpoint");
        store
            .conn()
            .execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES (randomblob(100000));")
            .unwrap();
        let in_file = || std::fs::metadata(&path).unwrap().len();
        // The commit itself copied nothing into the database file...
        assert!(in_file() < 100_000, "{} bytes", in_file());
        // ...the thread does, within its interval.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while in_file() < 100_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(in_file() >= 100_000, "checkpointed: {} bytes", in_file());
        drop(tx);
        handle.join().unwrap();
    }

    /// Commits back to back for two seconds, each of a few pages, as a busy hall's
    /// writer does: the log starts over again and again and its file stays small, where
    /// passive passes alone never catch up and the file grows with every commit.
    #[test]
    fn under_steady_writes_the_log_starts_over_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hallq.db");
        let mut store = Store::open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = spawn(&store, rx).unwrap().expect("a thread");
        store
            .conn()
            .execute_batch("CREATE TABLE t (x BLOB)")
            .unwrap();
        let wal = format!("{}-wal", path.display());
        let salt = || {
            let head = std::fs::read(&wal).unwrap_or_default();
            head.get(16..20).map(<[u8]>::to_vec)
        };
        let (mut restarts, mut last_salt, mut commits, mut restarted) = (0, salt(), 0, 0);
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            store.begin().unwrap();
            store
                .conn()
                .execute("INSERT INTO t VALUES (randomblob(12000))", [])
                .unwrap();
            store.end().unwrap();
            commits += 1;
            restarted += usize::from(store.restart_log_if_due());
            let now = salt();
            if now != last_salt {
                restarts += 1;
                last_salt = now;
            }
        }
        let size = std::fs::metadata(&wal).unwrap().len();
        // Four pages a commit: without restarts the log holds every one of them.
        let all = commits as u64 * 4 * 4096;
        assert!(
            restarted >= 2,
            "the writer caught up {restarted} times in {commits} commits"
        );
        assert!(
            restarts >= 2,
            "the log started over {restarts} times in {commits} commits"
        );
        assert!(
            size < all / 2,
            "the log's file is {size} bytes after {commits} commits ({all} bytes written)"
        );
        drop(tx);
        handle.join().unwrap();
    }

    #[test]
    fn an_in_memory_store_keeps_sqlites_own_checkpoints() {
        let store = Store::in_memory().unwrap();
        let (_tx, rx) = std::sync::mpsc::channel();
        assert!(spawn(&store, rx).unwrap().is_none());
    }
}
