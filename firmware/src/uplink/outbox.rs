//! The uplink's own connection to the events table.
//!
//! Why a second connection rather than the core thread: the core answers every ticket
//! only after its transaction is on disk, so anything queued on it delays a citizen.
//! With WAL, reading the backlog here never blocks the core's writer. Delivered marks
//! are writes, but they are batched (one `UPDATE … WHERE seq <= watermark` per batch
//! of PUBACKs, at most every [`MARK_INTERVAL`]) and committed with
//! `synchronous=NORMAL`: no fsync of their own, they ride on the core's next durable
//! commit. A mark lost to a power cut only means those events are sent again with the
//! same ids, which the hall server drops as duplicates; an event is never marked
//! before its PUBACK, so nothing can be lost that way.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::uplink::{self as rows, Backlog, OutboxRow};
use crate::store::{StoreError, archive};

/// Longest a delivered mark waits to be written while PUBACKs keep coming.
pub const MARK_INTERVAL: Duration = Duration::from_millis(200);
/// Rows read from the table at once.
pub const PAGE: usize = 2000;

/// Fails when the database holds generated history.
fn refuse_generated(conn: &Connection) -> Result<(), StoreError> {
    match crate::store::generated_history(conn)? {
        Some(note) => Err(StoreError::Generated(note)),
        None => Ok(()),
    }
}

/// The uplink's connection, shared with blocking tasks.
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
}

impl Outbox {
    /// Opens a connection beside the core's (the core has migrated the schema).
    /// Refuses a database that `hallq gen-history` wrote: its events are invented.
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(16);
        refuse_generated(&conn)?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs a read (a report, say) on the uplink's connection, off the core thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.with(f).await
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&c)
        })
        .await
        .map_err(|e| StoreError::Damaged(format!("outbox task failed: {e}")))?
    }

    /// The sequence number before the first undelivered event.
    pub async fn watermark(&self) -> Result<i64, StoreError> {
        self.with(rows::delivered_watermark).await
    }

    /// A page of the events after `seq` (see [`rows::events_after`]: undelivered ones,
    /// unless a resend rewound the link), each encoded by `encode`.
    pub async fn page<T: Send + 'static>(
        &self,
        after: i64,
        encode: impl Fn(&OutboxRow) -> T + Send + 'static,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        self.with(move |c| {
            // Checked on every page too (one lookup in a one-row table): history
            // generated into the file after the link started never goes up either.
            refuse_generated(c)?;
            Ok(rows::events_after(c, after, PAGE)?
                .iter()
                .map(|r| (r.seq, encode(r)))
                .collect())
        })
        .await
    }

    /// Where a resend from `from` starts and ends (see [`rows::resend_range`]).
    pub async fn resend_range(&self, from: i64) -> Result<rows::ResendRange, StoreError> {
        self.with(move |c| rows::resend_range(c, from)).await
    }

    /// The newest committed seq and the newest delivered one (the watermark).
    pub async fn seqs(&self) -> Result<(i64, i64), StoreError> {
        self.with(|c| Ok((rows::newest_seq(c)?, rows::delivered_watermark(c)?)))
            .await
    }

    /// Marks everything up to `upto` delivered now.
    pub async fn mark(&self, upto: i64) -> Result<usize, StoreError> {
        let now = crate::core::wall_now().0;
        self.with(move |c| rows::mark_delivered(c, upto, now)).await
    }

    /// Near-turn text messages waiting for the broker, oldest first.
    pub async fn sms_pending(&self) -> Result<Vec<crate::store::notices::SmsRow>, StoreError> {
        self.with(|c| crate::store::notices::sms_pending(c, 64))
            .await
    }

    /// Removes text messages the broker has acknowledged. A removal lost to a power
    /// cut (this connection does not fsync) sends the message again with its id.
    pub async fn sms_delivered(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        self.with(move |c| crate::store::notices::sms_delivered(c, &ids))
            .await
    }

    /// Backlog size and age.
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.with(rows::backlog).await
    }

    /// Archives, then removes, the events retention lets go (see [`archive`]).
    pub async fn prune(
        &self,
        retention: archive::Retention,
    ) -> Result<archive::Pruned, StoreError> {
        let now = crate::core::wall_now();
        self.with(move |c| archive::prune(c, &retention, now)).await
    }
}
