//! PostgreSQL: the schema, and the one transaction that stores a batch of events.
//!
//! Every event is stored once: its id and its `(controller_id, seq)` are unique in the
//! narrow table `event_keys`, which a batch inserts into first with `ON CONFLICT DO
//! NOTHING`; only the events whose keys it took go into `events`, partitioned by month
//! of `at` ([`crate::partitions`]). So an event sent twice (a controller's resend, a
//! broker's redelivery, two instances racing) adds nothing the second time, whatever
//! month it names. The batch's keys are inserted in id order and the controllers' rows
//! updated in controller order, so two instances writing at once never deadlock. Per
//! controller the row keeps the highest seq, how many events are stored and the highest
//! seq below which nothing is missing (`contiguous_seq`): when `stored` equals the span
//! from `base_seq` to `max_seq` there is no gap. The same transaction adds the inserted
//! events to the period figures ([`crate::rollup`]).

use std::time::Duration;

use hallq::uplink::wire::SmsMessage;
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
    // 2: the warnings (预警) of every hall with their follow-up, and the people who
    // sign in: accounts with a role over a region, their sessions, and what they did.
    "CREATE TABLE warnings (
        controller_id text NOT NULL,
        seq bigint NOT NULL,
        hall_id text NOT NULL,
        type text,
        at bigint,
        payload jsonb,
        escalated_at bigint,
        handled_at bigint,
        outcome text,
        PRIMARY KEY (controller_id, seq)
    );
    CREATE INDEX warnings_open ON warnings (hall_id, at) WHERE handled_at IS NULL AND type IS NOT NULL;
    CREATE TABLE accounts (
        login text PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL,
        region text NOT NULL,
        password text NOT NULL,
        failures int NOT NULL DEFAULT 0,
        locked_until bigint,
        disabled_at bigint,
        created_at bigint NOT NULL,
        password_at bigint NOT NULL
    );
    CREATE TABLE sessions (
        token_hash text PRIMARY KEY,
        login text NOT NULL REFERENCES accounts ON DELETE CASCADE,
        created_at bigint NOT NULL,
        seen_at bigint NOT NULL
    );
    CREATE TABLE audit (
        n bigserial PRIMARY KEY,
        at bigint NOT NULL,
        login text NOT NULL,
        action text NOT NULL,
        target text,
        detail jsonb
    );",
    // 3: near-turn text messages for the SMS webhook (the number erased once posted or
    // expired), the days of the daily 好差评 export, and the ratings by time.
    "CREATE TABLE sms (
        id text PRIMARY KEY,
        controller_id text NOT NULL,
        hall_id text NOT NULL,
        at bigint NOT NULL,
        time text NOT NULL,
        mobile text,
        near_turn jsonb NOT NULL,
        received_at bigint NOT NULL,
        instance text NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        attempts int NOT NULL DEFAULT 0,
        next_at bigint NOT NULL,
        lease_until bigint,
        lease_by text,
        posted_at bigint,
        last_error text
    );
    CREATE INDEX sms_due ON sms (next_at) WHERE mobile IS NOT NULL;
    CREATE TABLE exports (
        day text PRIMARY KEY,
        written_at bigint NOT NULL,
        instance text NOT NULL,
        ratings bigint NOT NULL
    );
    CREATE INDEX events_ratings ON events (at) WHERE type = 'rating_recorded';",
    // 4: period figures kept by the ingest (`crate::rollup`), what they remember
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
    // 5: pushes from above (`crate::push`): who sent what to which halls, and each
    // controller's answer.
    "CREATE TABLE pushes (
        id text PRIMARY KEY,
        at bigint NOT NULL,
        login text NOT NULL,
        command text NOT NULL,
        scope text NOT NULL,
        body jsonb NOT NULL
    );
    CREATE INDEX pushes_at ON pushes (at);
    CREATE TABLE push_targets (
        push_id text NOT NULL REFERENCES pushes ON DELETE CASCADE,
        controller_id text NOT NULL,
        hall_id text NOT NULL,
        version bigint,
        sent_at bigint,
        attempts int NOT NULL DEFAULT 0,
        answered_at bigint,
        ok boolean,
        reason text,
        result jsonb,
        PRIMARY KEY (push_id, controller_id)
    );
    CREATE INDEX push_targets_hall ON push_targets (hall_id);
    CREATE INDEX push_targets_version ON push_targets (controller_id, version);
    CREATE INDEX push_targets_unanswered ON push_targets (sent_at) WHERE answered_at IS NULL;",
    // 6: the phone page (`crate::phone`) finds a ticket by its token's hash.
    "CREATE INDEX events_token_hash ON events ((payload->'ticket'->>'token_hash'))
        WHERE type = 'ticket_issued';",
    // 7: `events` partitioned by month of `at` (UTC), the exactly-once keys in a narrow
    // table of their own (`crate::partitions`). A partitioned table's unique keys must
    // hold `at`, so `id` and `(controller_id, seq)` are unique in `event_keys`, which is
    // not partitioned, and the wide rows go into the month of their `at`; a row of a
    // month without a partition goes into `events_default`. The rows of version 6 move
    // into a partition per month they fall in (those outside 2000–2099 into the
    // default); every index the queries use is made again on the partitioned table. The
    // months ahead are made by the server (`partitions::ensure`);
    // `events_dropped` records the months dropped (`hallq-server partitions drop`), which
    // are not made again.
    "ALTER TABLE events RENAME TO events_v6;
    CREATE TABLE event_keys (
        id uuid NOT NULL,
        controller_id text NOT NULL,
        seq bigint NOT NULL
    );
    INSERT INTO event_keys (id, controller_id, seq) SELECT id, controller_id, seq FROM events_v6;
    ALTER TABLE event_keys ADD CONSTRAINT event_keys_pkey PRIMARY KEY (id),
        ADD CONSTRAINT event_keys_controller_seq UNIQUE (controller_id, seq);
    CREATE TABLE events (
        id uuid NOT NULL,
        controller_id text NOT NULL,
        hall_id text NOT NULL,
        seq bigint NOT NULL,
        at bigint NOT NULL,
        type text NOT NULL,
        payload jsonb NOT NULL,
        stored_at bigint NOT NULL,
        instance text NOT NULL
    ) PARTITION BY RANGE (at);
    CREATE TABLE events_default PARTITION OF events DEFAULT;
    DO $$
    DECLARE m timestamp;
    BEGIN
        FOR m IN SELECT DISTINCT date_trunc('month', to_timestamp(at / 1000.0) AT TIME ZONE 'UTC')
                 FROM events_v6 WHERE at >= 946684800000 AND at < 4102444800000 LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%s) TO (%s)',
                'events_' || to_char(m, 'YYYY_MM'),
                (extract(epoch FROM m) * 1000)::bigint,
                (extract(epoch FROM m + interval '1 month') * 1000)::bigint);
        END LOOP;
    END $$;
    INSERT INTO events (id, controller_id, hall_id, seq, at, type, payload, stored_at, instance)
        SELECT id, controller_id, hall_id, seq, at, type, payload, stored_at, instance FROM events_v6;
    DROP TABLE events_v6;
    CREATE INDEX events_hall_at ON events (hall_id, at);
    CREATE INDEX events_ratings ON events (at) WHERE type = 'rating_recorded';
    CREATE INDEX events_token_hash ON events ((payload->'ticket'->>'token_hash'))
        WHERE type = 'ticket_issued';
    CREATE TABLE events_dropped (
        name text NOT NULL,
        from_at bigint,
        to_at bigint NOT NULL,
        rows bigint NOT NULL,
        keys bigint NOT NULL,
        dropped_at bigint NOT NULL
    );",
    // 8: each controller's setup in force, as it publishes it on its retained `setup`
    // topic (`store_setup`): what the dashboard's setup editor starts from.
    "CREATE TABLE setups (
        controller_id text PRIMARY KEY,
        hall_id text NOT NULL,
        version bigint,
        document jsonb NOT NULL,
        received_at bigint NOT NULL
    );
    CREATE INDEX setups_hall ON setups (hall_id);",
];

/// The event types that are warnings (预警): each stays open until a `warning_handled`
/// names its seq.
pub const WARNING_TYPES: &[&str] = hallq::store::warnings::RAISED;

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
    migrate_to(client, MIGRATIONS.len()).await
}

/// The newest schema version.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Brings the schema up to `version` (at most [`SCHEMA_VERSION`]); returns the steps
/// applied. The server always wants the newest; an older one is how a test makes the
/// database a release before left, to run the next step on it.
pub async fn migrate_to(client: &mut Client, version: usize) -> Result<usize, DbError> {
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
    for (i, step) in MIGRATIONS.iter().enumerate().take(version) {
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
    /// New near-turn text messages.
    pub sms: u64,
    /// Text messages already stored (same id).
    pub sms_duplicates: u64,
}

/// Stores a batch in one transaction: the events, the controllers' counters, the
/// conflicting events aside, the near-turn text messages (once by id, due at once
/// for the sender, see [`crate::sms`]) and the period figures of the events inserted
/// ([`crate::rollup`], days placed by `clock`). `stored_at` is the commit's time (ms).
pub async fn store(
    client: &mut Client,
    rows: &mut Vec<Row>,
    sms: &mut [SmsMessage],
    instance: &str,
    stored_at: i64,
    clock: &DayClock,
) -> Result<Stored, DbError> {
    rows.sort_by_key(|r| r.id);
    // The same event twice in one batch (a resend crossing the original): the insert
    // takes it once, so it is counted, folded and stored once.
    let before = rows.len();
    rows.dedup_by_key(|r| r.id);
    let twice = (before - rows.len()) as u64;
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let controllers: Vec<&str> = rows.iter().map(|r| r.controller_id.as_str()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let tx = client.transaction().await?;
    let (sms_new, sms_duplicates) = store_sms(&tx, sms, instance, stored_at).await?;
    // The keys first: what this transaction takes is new, once across every month.
    let taken = tx
        .query(
            "INSERT INTO event_keys (id, controller_id, seq)
             SELECT u.id, u.c, u.s FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u(id, c, s)
             ORDER BY u.id
             ON CONFLICT DO NOTHING
             RETURNING id",
            &[&ids, &controllers, &seqs],
        )
        .await?;
    let new: std::collections::HashSet<uuid::Uuid> = taken.iter().map(|r| r.get(0)).collect();
    // The wide rows of the keys taken, into the month of their `at`.
    let fresh: Vec<&Row> = rows.iter().filter(|r| new.contains(&r.id)).collect();
    if !fresh.is_empty() {
        let ids: Vec<uuid::Uuid> = fresh.iter().map(|r| r.id).collect();
        let controllers: Vec<&str> = fresh.iter().map(|r| r.controller_id.as_str()).collect();
        let halls: Vec<&str> = fresh.iter().map(|r| r.hall_id.as_str()).collect();
        let seqs: Vec<i64> = fresh.iter().map(|r| r.seq).collect();
        let ats: Vec<i64> = fresh.iter().map(|r| r.at).collect();
        let kinds: Vec<&str> = fresh.iter().map(|r| r.kind.as_str()).collect();
        let payloads: Vec<Json<&serde_json::Value>> =
            fresh.iter().map(|r| Json(&r.payload)).collect();
        tx.execute(
            "INSERT INTO events (id, controller_id, hall_id, seq, at, type, payload, stored_at, instance)
             SELECT u.id, u.c, u.h, u.s, u.a, u.t, u.p, $8, $9
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::jsonb[])
                  AS u(id, c, h, s, a, t, p)",
            &[&ids, &controllers, &halls, &seqs, &ats, &kinds, &payloads, &stored_at, &instance],
        )
        .await?;
    }
    let mut out = Stored {
        inserted: fresh.len() as u64,
        duplicates: twice,
        sms: sms_new,
        sms_duplicates,
        ..Stored::default()
    };
    // Per controller: how many new, the highest seq and time among them.
    let mut per: std::collections::BTreeMap<&str, (&str, i64, i64, i64)> = Default::default();
    for r in &fresh {
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
            .query("SELECT id FROM event_keys WHERE id = ANY($1)", &[&left_ids])
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
    track_warnings(&tx, fresh.iter().copied()).await?;
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
    crate::rollup::apply(&tx, clock, &fresh).await?;
    crate::follow_ups::apply(&tx, &fresh).await?;
    tx.commit().await?;
    Ok(out)
}

/// Keeps the `warnings` table up to date with a batch's new events: a warning opens a
/// row, `warning_escalated` and `warning_handled` mark it. The follow-up may arrive
/// before its warning (a resend fills a gap later), so each side upserts the row and
/// keeps what the other wrote; rows are written in key order, as events are.
async fn track_warnings<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    new: impl Iterator<Item = &'a Row>,
) -> Result<(), DbError> {
    let mut marks: Vec<(&str, i64, &str, &Row)> = Vec::new();
    for r in new {
        if WARNING_TYPES.contains(&r.kind.as_str()) {
            marks.push((&r.controller_id, r.seq, "raised", r));
        } else if (r.kind == "warning_handled" || r.kind == "warning_escalated")
            && let Some(seq) = r.payload.get("warning").and_then(serde_json::Value::as_i64)
        {
            marks.push((&r.controller_id, seq, r.kind.as_str(), r));
        }
    }
    marks.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (controller, seq, what, r) in marks {
        match what {
            "raised" => {
                tx.execute(
                    "INSERT INTO warnings (controller_id, seq, hall_id, type, at, payload)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (controller_id, seq) DO UPDATE SET
                       type = excluded.type, at = excluded.at, payload = excluded.payload",
                    &[
                        &controller,
                        &seq,
                        &r.hall_id,
                        &r.kind,
                        &r.at,
                        &Json(&r.payload),
                    ],
                )
                .await?;
            }
            "warning_handled" => {
                let outcome = r.payload.get("outcome").and_then(serde_json::Value::as_str);
                tx.execute(
                    "INSERT INTO warnings (controller_id, seq, hall_id, handled_at, outcome)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (controller_id, seq) DO UPDATE SET
                       handled_at = excluded.handled_at, outcome = excluded.outcome",
                    &[&controller, &seq, &r.hall_id, &r.at, &outcome],
                )
                .await?;
            }
            _ => {
                tx.execute(
                    "INSERT INTO warnings (controller_id, seq, hall_id, escalated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (controller_id, seq) DO UPDATE SET escalated_at = excluded.escalated_at",
                    &[&controller, &seq, &r.hall_id, &r.at],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Inserts text messages in id order, each once; returns (new, already stored).
async fn store_sms(
    tx: &tokio_postgres::Transaction<'_>,
    sms: &mut [SmsMessage],
    instance: &str,
    at: i64,
) -> Result<(u64, u64), DbError> {
    if sms.is_empty() {
        return Ok((0, 0));
    }
    sms.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = sms.iter().map(|m| m.id.as_str()).collect();
    let controllers: Vec<&str> = sms.iter().map(|m| m.controller_id.as_str()).collect();
    let halls: Vec<&str> = sms.iter().map(|m| m.hall_id.as_str()).collect();
    let ats: Vec<i64> = sms.iter().map(|m| m.at).collect();
    let times: Vec<&str> = sms.iter().map(|m| m.time.as_str()).collect();
    let mobiles: Vec<&str> = sms.iter().map(|m| m.mobile.as_str()).collect();
    let near: Vec<Json<&serde_json::Value>> = sms.iter().map(|m| Json(&m.near_turn)).collect();
    let n = tx
        .execute(
            "INSERT INTO sms (id, controller_id, hall_id, at, time, mobile, near_turn,
                              received_at, instance, next_at)
             SELECT u.id, u.c, u.h, u.a, u.t, u.m, u.n, $8, $9, $8
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                         $7::jsonb[]) AS u(id, c, h, a, t, m, n)
             ORDER BY u.id
             ON CONFLICT (id) DO NOTHING",
            &[
                &ids,
                &controllers,
                &halls,
                &ats,
                &times,
                &mobiles,
                &near,
                &at,
                &instance,
            ],
        )
        .await?;
    Ok((n, sms.len() as u64 - n))
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

/// Keeps a controller's setup in force (its retained `setup` document), the latest per
/// controller.
pub async fn store_setup(
    client: &Client,
    controller_id: &str,
    hall_id: &str,
    setup: &hallq::uplink::wire::SetupDocument,
    at: i64,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO setups (controller_id, hall_id, version, document, received_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (controller_id) DO UPDATE SET
               hall_id = excluded.hall_id, version = excluded.version,
               document = excluded.document, received_at = excluded.received_at",
            &[&controller_id, &hall_id, &setup.version, &Json(setup), &at],
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
