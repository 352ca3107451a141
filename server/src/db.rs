//! PostgreSQL: the schema, and the one transaction that stores a batch of events.
//!
//! Every event is stored once: the event id is the primary key and `(controller_id,
//! seq)` is unique, and a batch is inserted with `ON CONFLICT DO NOTHING`, so an event
//! sent twice (a controller's resend, a broker's redelivery, two instances racing) adds
//! nothing the second time. The batch's rows are inserted in id order and the
//! controllers' rows updated in controller order, so two instances writing at once
//! never deadlock. Per controller the row keeps the highest seq, how many events are
//! stored and the highest seq below which nothing is missing (`contiguous_seq`): when
//! `stored` equals the span from `base_seq` to `max_seq` there is no gap. The same
//! transaction adds the inserted events to the period figures ([`crate::rollup`]).

use std::time::Duration;

use thiserror::Error;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, NoTls};

use crate::rollup::DayClock;

/// A database failure.
#[derive(Debug, Error)]
pub enum DbError {
    /// From the server or the connection.
    #[error("postgresql: {0}")]
    Pg(#[from] tokio_postgres::Error),
}

/// The schema, one step per version; a step is never edited once released.
const MIGRATIONS: &[&str] = &[
    // 1: events, controllers, what could not be stored.
    "CREATE TABLE events (
        id uuid PRIMARY KEY,
        controller_id text NOT NULL,
        hall_id text NOT NULL,
        seq bigint NOT NULL,
        at bigint NOT NULL,
        type text NOT NULL,
        payload jsonb NOT NULL,
        stored_at bigint NOT NULL,
        instance text NOT NULL,
        UNIQUE (controller_id, seq)
    );
    CREATE INDEX events_hall_at ON events (hall_id, at);
    CREATE TABLE controllers (
        controller_id text PRIMARY KEY,
        hall_id text NOT NULL,
        base_seq bigint NOT NULL DEFAULT 1,
        max_seq bigint NOT NULL DEFAULT 0,
        stored bigint NOT NULL DEFAULT 0,
        contiguous_seq bigint NOT NULL DEFAULT 0,
        last_event_at bigint,
        state jsonb,
        state_at bigint,
        reported_seq bigint,
        gap_since bigint,
        resend_at bigint,
        resend_from bigint,
        resends bigint NOT NULL DEFAULT 0,
        resend_result jsonb,
        conflicts bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE conflicts (
        id uuid PRIMARY KEY,
        controller_id text NOT NULL,
        seq bigint NOT NULL,
        at bigint NOT NULL,
        type text NOT NULL,
        payload jsonb NOT NULL,
        stored_at bigint NOT NULL
    );
    CREATE TABLE rejected (
        n bigserial PRIMARY KEY,
        topic text NOT NULL,
        received_at bigint NOT NULL,
        reason text NOT NULL,
        body text NOT NULL
    );",
    // 2: period figures kept by the ingest (`crate::rollup`), what they remember
    // between events, and the 好差评 follow-ups (`crate::follow_ups`). The figures'
    // rows are updated in place many times a day: half-full pages keep those updates
    // on the page (HOT), so the indexes are not written again.
    "CREATE TABLE period_figures (
        hall_id text NOT NULL,
        day date NOT NULL,
        scope text NOT NULL,
        key text NOT NULL,
        issued bigint NOT NULL DEFAULT 0,
        called bigint NOT NULL DEFAULT 0,
        served bigint NOT NULL DEFAULT 0,
        no_shows bigint NOT NULL DEFAULT 0,
        transfers bigint NOT NULL DEFAULT 0,
        waits bigint NOT NULL DEFAULT 0,
        wait_sum bigint NOT NULL DEFAULT 0,
        wait_max bigint NOT NULL DEFAULT 0,
        services bigint NOT NULL DEFAULT 0,
        service_sum bigint NOT NULL DEFAULT 0,
        service_max bigint NOT NULL DEFAULT 0,
        over_limit bigint NOT NULL DEFAULT 0,
        pauses bigint NOT NULL DEFAULT 0,
        pause_secs bigint NOT NULL DEFAULT 0,
        signed_in_secs bigint NOT NULL DEFAULT 0,
        very_satisfied bigint NOT NULL DEFAULT 0,
        satisfied bigint NOT NULL DEFAULT 0,
        basically_satisfied bigint NOT NULL DEFAULT 0,
        dissatisfied bigint NOT NULL DEFAULT 0,
        very_dissatisfied bigint NOT NULL DEFAULT 0,
        warnings bigint NOT NULL DEFAULT 0,
        warnings_handled bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (hall_id, day, scope, key)
    ) WITH (fillfactor = 50);
    CREATE INDEX period_figures_scope_day ON period_figures (scope, day);
    CREATE TABLE period_reasons (
        hall_id text NOT NULL,
        day date NOT NULL,
        scope text NOT NULL,
        key text NOT NULL,
        reason text NOT NULL,
        n bigint NOT NULL,
        PRIMARY KEY (hall_id, day, scope, key, reason)
    ) WITH (fillfactor = 50);
    CREATE TABLE rollup_calls (
        controller_id text NOT NULL,
        ticket bigint NOT NULL,
        service text,
        PRIMARY KEY (controller_id, ticket)
    );
    CREATE TABLE rollup_sessions (
        controller_id text NOT NULL,
        window_no bigint NOT NULL,
        staff text NOT NULL,
        since bigint NOT NULL,
        PRIMARY KEY (controller_id, window_no)
    );
    CREATE TABLE rollup_ratings (
        controller_id text NOT NULL,
        ticket bigint NOT NULL,
        hall_id text NOT NULL,
        at bigint NOT NULL,
        level int NOT NULL,
        service text,
        window_no bigint,
        staff text,
        reasons text[] NOT NULL,
        PRIMARY KEY (controller_id, ticket)
    );
    CREATE TABLE rollup_warnings (
        controller_id text NOT NULL,
        seq bigint NOT NULL,
        hall_id text NOT NULL,
        at bigint NOT NULL,
        service text,
        window_no bigint,
        staff text,
        PRIMARY KEY (controller_id, seq)
    );
    CREATE TABLE follow_ups (
        controller_id text NOT NULL,
        ticket bigint NOT NULL,
        hall_id text NOT NULL,
        number text NOT NULL,
        service text,
        window_no bigint,
        staff text,
        level text,
        reasons text[],
        rated_at bigint,
        due_day date,
        due_at bigint,
        state text NOT NULL DEFAULT 'open',
        steps jsonb NOT NULL DEFAULT '[]',
        late boolean NOT NULL DEFAULT false,
        updated_at bigint NOT NULL,
        PRIMARY KEY (controller_id, ticket)
    );
    CREATE INDEX follow_ups_open ON follow_ups (due_at) WHERE state <> 'closed';",
];

/// Connects, retrying every second until `give_up` has passed.
pub async fn connect(url: &str, give_up: Duration) -> Result<Client, DbError> {
    let deadline = tokio::time::Instant::now() + give_up;
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::warn!("postgresql connection ended: {e}");
                    }
                });
                return Ok(client);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!("postgresql not reachable yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Brings the schema up to date. Instances starting together take turns on an advisory
/// lock, so each step runs once.
pub async fn migrate(client: &mut Client) -> Result<usize, DbError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(4851)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version int PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    let mut applied = 0;
    for (i, step) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version <= have {
            continue;
        }
        tx.batch_execute(step).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// One event ready to store.
#[derive(Debug, Clone)]
pub struct Row {
    /// Event id.
    pub id: uuid::Uuid,
    /// Controller.
    pub controller_id: String,
    /// Hall.
    pub hall_id: String,
    /// Per-controller sequence.
    pub seq: i64,
    /// When it happened at the hall (ms).
    pub at: i64,
    /// Event type.
    pub kind: String,
    /// Its body.
    pub payload: serde_json::Value,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stored {
    /// New rows.
    pub inserted: u64,
    /// Events already stored (same id).
    pub duplicates: u64,
    /// Events whose `(controller, seq)` was taken by another id: kept aside in
    /// `conflicts` (a controller whose database was replaced starts again at seq 1).
    pub conflicts: u64,
}

/// Stores a batch in one transaction: the events, the controllers' counters, the
/// conflicting events aside, and the period figures of the events inserted
/// ([`crate::rollup`], days placed by `clock`). `stored_at` is the commit's time (ms).
pub async fn store(
    client: &mut Client,
    rows: &mut [Row],
    instance: &str,
    stored_at: i64,
    clock: &DayClock,
) -> Result<Stored, DbError> {
    rows.sort_by_key(|r| r.id);
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let controllers: Vec<&str> = rows.iter().map(|r| r.controller_id.as_str()).collect();
    let halls: Vec<&str> = rows.iter().map(|r| r.hall_id.as_str()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let ats: Vec<i64> = rows.iter().map(|r| r.at).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let payloads: Vec<Json<&serde_json::Value>> = rows.iter().map(|r| Json(&r.payload)).collect();
    let tx = client.transaction().await?;
    let inserted = tx
        .query(
            "INSERT INTO events (id, controller_id, hall_id, seq, at, type, payload, stored_at, instance)
             SELECT u.id, u.c, u.h, u.s, u.a, u.t, u.p, $8, $9
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::jsonb[])
                  AS u(id, c, h, s, a, t, p)
             ORDER BY u.id
             ON CONFLICT DO NOTHING
             RETURNING id",
            &[&ids, &controllers, &halls, &seqs, &ats, &kinds, &payloads, &stored_at, &instance],
        )
        .await?;
    let mut out = Stored {
        inserted: inserted.len() as u64,
        ..Stored::default()
    };
    let new: std::collections::HashSet<uuid::Uuid> = inserted.iter().map(|r| r.get(0)).collect();
    // Per controller: how many new, the highest seq and time among them.
    let mut per: std::collections::BTreeMap<&str, (&str, i64, i64, i64)> = Default::default();
    for r in rows.iter().filter(|r| new.contains(&r.id)) {
        let e = per.entry(&r.controller_id).or_insert((&r.hall_id, 0, 0, 0));
        e.1 += 1;
        e.2 = e.2.max(r.seq);
        e.3 = e.3.max(r.at);
    }
    let leftover: Vec<&Row> = rows.iter().filter(|r| !new.contains(&r.id)).collect();
    if !leftover.is_empty() {
        // Same id already stored: a duplicate. Otherwise the seq is taken by another id.
        let left_ids: Vec<uuid::Uuid> = leftover.iter().map(|r| r.id).collect();
        let known: std::collections::HashSet<uuid::Uuid> = tx
            .query("SELECT id FROM events WHERE id = ANY($1)", &[&left_ids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for r in leftover {
            if known.contains(&r.id) {
                out.duplicates += 1;
                continue;
            }
            let n = tx
                .execute(
                    "INSERT INTO conflicts (id, controller_id, seq, at, type, payload, stored_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[
                        &r.id,
                        &r.controller_id,
                        &r.seq,
                        &r.at,
                        &r.kind,
                        &Json(&r.payload),
                        &stored_at,
                    ],
                )
                .await?;
            if n > 0 {
                out.conflicts += 1;
                per.entry(&r.controller_id).or_insert((&r.hall_id, 0, 0, 0));
                tx.execute(
                    "UPDATE controllers SET conflicts = conflicts + 1 WHERE controller_id = $1",
                    &[&r.controller_id],
                )
                .await?;
            } else {
                out.duplicates += 1;
            }
        }
    }
    if !per.is_empty() {
        let c: Vec<&str> = per.keys().copied().collect();
        let h: Vec<&str> = per.values().map(|v| v.0).collect();
        let n: Vec<i64> = per.values().map(|v| v.1).collect();
        let s: Vec<i64> = per.values().map(|v| v.2).collect();
        let a: Vec<i64> = per.values().map(|v| v.3).collect();
        tx.execute(
            "INSERT INTO controllers AS k (controller_id, hall_id, stored, max_seq, last_event_at, contiguous_seq)
             SELECT u.c, u.h, u.n, u.s, u.a, CASE WHEN u.n = u.s THEN u.s ELSE 0 END
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) AS u(c, h, n, s, a)
             ORDER BY u.c
             ON CONFLICT (controller_id) DO UPDATE SET
               hall_id = excluded.hall_id,
               stored = k.stored + excluded.stored,
               max_seq = greatest(k.max_seq, excluded.max_seq),
               last_event_at = greatest(k.last_event_at, excluded.last_event_at),
               contiguous_seq = CASE
                 WHEN k.stored + excluded.stored = greatest(k.max_seq, excluded.max_seq) - k.base_seq + 1
                 THEN greatest(k.max_seq, excluded.max_seq)
                 ELSE k.contiguous_seq END",
            &[&c, &h, &n, &s, &a],
        )
        .await?;
    }
    // The controllers' rows are locked now, in controller order: the figures of the
    // same controller are folded by one transaction at a time.
    let fresh: Vec<&Row> = rows.iter().filter(|r| new.contains(&r.id)).collect();
    crate::rollup::apply(&tx, clock, &fresh).await?;
    crate::follow_ups::apply(&tx, &fresh).await?;
    tx.commit().await?;
    Ok(out)
}

/// Keeps a controller's retained state document.
pub async fn store_state(
    client: &Client,
    controller_id: &str,
    hall_id: &str,
    state: &serde_json::Value,
    at: i64,
) -> Result<(), DbError> {
    let reported = state
        .pointer("/events/last_seq")
        .and_then(serde_json::Value::as_i64);
    client
        .execute(
            "INSERT INTO controllers AS k (controller_id, hall_id, state, state_at, reported_seq)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (controller_id) DO UPDATE SET
               state = excluded.state, state_at = excluded.state_at,
               reported_seq = coalesce(greatest(k.reported_seq, excluded.reported_seq), k.reported_seq)",
            &[&controller_id, &hall_id, &Json(state), &at, &reported],
        )
        .await?;
    Ok(())
}

/// Keeps a message that could not be read, for the technician (the newest 10,000).
pub async fn reject(
    client: &Client,
    topic: &str,
    at: i64,
    reason: &str,
    body: &[u8],
) -> Result<(), DbError> {
    let body = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
    client
        .execute(
            "INSERT INTO rejected (topic, received_at, reason, body) VALUES ($1, $2, $3, $4)",
            &[&topic, &at, &reason, &body],
        )
        .await?;
    client
        .execute(
            "DELETE FROM rejected WHERE n <= (SELECT max(n) - 10000 FROM rejected)",
            &[],
        )
        .await?;
    Ok(())
}
