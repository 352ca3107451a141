//! WAL checkpoints off the commit path. By default SQLite checkpoints inside whichever
//! commit pushes the WAL past 1,000 pages: that one commit then copies pages into the
//! database file and fsyncs it, and the citizen whose ticket it was waits several times
//! as long as everyone else. The core turns that off for its connection and this
//! thread, on a connection of its own, copies committed pages across every quarter of a
//! second instead (`PASSIVE`: it never blocks the writer or readers). Durability does
//! not change: a commit is durable once its WAL frames are synced, checkpoint or not.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use super::{Store, StoreError};

/// How often committed pages are copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);

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
    let handle = std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || run(&conn, &stop))
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

fn run(conn: &Connection, stop: &Receiver<()>) {
    // A full disk fails every attempt until space is freed: say so once, and once more
    // when it works again, rather than four times a second.
    let mut failing: Option<String> = None;
    loop {
        let last = matches!(
            stop.recv_timeout(INTERVAL),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        );
        match checkpoint(conn) {
            Ok(_) => {
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

    #[test]
    fn an_in_memory_store_keeps_sqlites_own_checkpoints() {
        let store = Store::in_memory().unwrap();
        let (_tx, rx) = std::sync::mpsc::channel();
        assert!(spawn(&store, rx).unwrap().is_none());
    }
}
