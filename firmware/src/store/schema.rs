//! Versioned migrations. Each entry runs once, in order, inside a transaction, and
//! `PRAGMA user_version` records how far a database has come.

/// Migrations; the index + 1 is the version a database reaches after running it.
pub const MIGRATIONS: &[&str] = &[
    // 1: events (audit log and outbox), the engine's projected state, staff and sessions.
    r#"
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        at INTEGER NOT NULL,
        type TEXT NOT NULL,
        schema INTEGER NOT NULL,
        payload TEXT NOT NULL,
        delivered_at INTEGER
    );
    CREATE TRIGGER events_append_only_update BEFORE UPDATE OF seq, id, at, type, schema, payload ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL,
        seq INTEGER NOT NULL,
        day TEXT NOT NULL,
        service TEXT NOT NULL,
        origin_service TEXT NOT NULL,
        class TEXT NOT NULL,
        state TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        queue_at INTEGER NOT NULL,
        due_at INTEGER,
        reserved_window INTEGER,
        window INTEGER,
        staff TEXT,
        called_at INTEGER,
        serving_at INTEGER,
        closed_at INTEGER,
        recalls INTEGER NOT NULL,
        no_shows INTEGER NOT NULL,
        transfers INTEGER NOT NULL,
        idempotency_key TEXT,
        citizen TEXT,
        appointment TEXT,
        case_no TEXT,
        channel TEXT NOT NULL,
        alarms INTEGER NOT NULL,
        UNIQUE (day, origin_service, seq)
    );
    CREATE UNIQUE INDEX tickets_by_key ON tickets (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tickets_by_day ON tickets (day);
    CREATE INDEX tickets_open ON tickets (state) WHERE state IN ('waiting', 'called', 'serving', 'transferred');
    CREATE TABLE windows (
        number INTEGER PRIMARY KEY,
        state TEXT NOT NULL
    );
    CREATE TABLE appointments (
        code TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        slot_at INTEGER NOT NULL,
        citizen TEXT,
        ticket INTEGER,
        missed INTEGER NOT NULL
    );
    CREATE TABLE ratings (
        ticket INTEGER PRIMARY KEY,
        day TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX ratings_by_day ON ratings (day);
    CREATE TABLE staff (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles TEXT NOT NULL,
        windows TEXT NOT NULL,
        pin_hash TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        staff TEXT NOT NULL,
        window INTEGER,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    "#,
    // 2: device faults and recoveries are rare; this partial index lets the start-up
    // read every device's last state without scanning years of events.
    r#"
    CREATE INDEX events_device ON events (seq) WHERE type IN ('device_fault', 'device_recovered');
    "#,
    // 3: the uplink. An event may be marked delivered once (never changed after), only
    // delivered events may be deleted (retention), a partial index finds the first
    // undelivered event at once, and configurations pushed from the hall server are kept.
    r#"
    CREATE TRIGGER events_delivered_once BEFORE UPDATE OF delivered_at ON events
        WHEN OLD.delivered_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'an event is marked delivered only once'); END;
    CREATE TRIGGER events_keep_undelivered BEFORE DELETE ON events
        WHEN OLD.delivered_at IS NULL
        BEGIN SELECT RAISE(ABORT, 'an undelivered event cannot be deleted'); END;
    CREATE INDEX events_undelivered ON events (seq) WHERE delivered_at IS NULL;
    CREATE INDEX events_controls ON events (type, seq)
        WHERE type IN ('kiosk_locked', 'kiosk_unlocked', 'notice_shown', 'notice_cleared');
    CREATE TABLE pushed_config (
        version INTEGER PRIMARY KEY,
        document TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    );
    "#,
    // 4: `tickets_by_day` duplicated the leading column of UNIQUE (day, origin_service,
    // seq), which serves every by-day query; dropping it saves a page write per ticket.
    r#"
    DROP INDEX tickets_by_day;
    "#,
    // 5: facts about the database itself. `generated_history` marks a database that
    // `hallq gen-history` wrote: its tickets and events are invented, and the uplink
    // refuses to publish from it.
    r#"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 6: staff accounts can be disabled and removed. A removed account keeps its row
    // (its id is never issued again) without a usable PIN.
    r#"
    ALTER TABLE staff ADD COLUMN disabled_at INTEGER;
    ALTER TABLE staff ADD COLUMN removed_at INTEGER;
    "#,
    // 7: open help requests (a citizen pressed a kiosk's help button; no member of staff
    // has acknowledged it yet), one per kiosk. State of its own, written in the same
    // transaction as the `help_requested` / `help_acknowledged` event, so a restart
    // shows them whatever retention has pruned from the event log.
    r#"
    CREATE TABLE help_requests (
        kiosk TEXT PRIMARY KEY,
        screen TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        event_seq INTEGER NOT NULL
    );
    "#,
    // 8: every ticket has a secret token only its citizen holds (the kiosk's answer, the
    // QR): its SHA-256 proves the citizen's own requests. Citizen keys were an unkeyed
    // hash of the ID number, salted with the controller id that /api/v1/health shows,
    // so an ID could be recovered by trying the candidates: they are dropped, from the
    // state and from every stored event (the one rewrite the event log ever gets, to
    // erase personal data; events already sent upstream cannot be recalled). Keys from
    // now on are HMAC-SHA-256 under the hall's own secret and never leave the state.
    r#"
    ALTER TABLE tickets ADD COLUMN token_hash TEXT;
    CREATE UNIQUE INDEX tickets_by_token ON tickets (token_hash) WHERE token_hash IS NOT NULL;
    UPDATE tickets SET citizen = NULL WHERE citizen IS NOT NULL;
    UPDATE appointments SET citizen = NULL WHERE citizen IS NOT NULL;
    DROP TRIGGER events_append_only_update;
    UPDATE events SET payload = json_remove(payload, '$.ticket.citizen', '$.appointment.citizen')
        WHERE type IN ('ticket_issued', 'appointment_booked') AND payload LIKE '%"citizen"%';
    CREATE TRIGGER events_append_only_update BEFORE UPDATE OF seq, id, at, type, schema, payload ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    "#,
    // 9: wrong PINs lock a staff id for the address they came from, not for everyone:
    // one row per (staff id, source address), known ids and unknown ones alike, so a
    // flood of guesses from one machine cannot lock the clerk at the window out, and an
    // unknown id is counted exactly as a known one. The account-wide columns are left
    // unused (a lock set before this migration is lifted).
    r#"
    CREATE TABLE sign_in_failures (
        staff TEXT NOT NULL,
        source TEXT NOT NULL,
        failures INTEGER NOT NULL,
        locked_until INTEGER,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (staff, source)
    ) WITHOUT ROWID;
    UPDATE staff SET failures = 0, locked_until = NULL;
    "#,
    // 10: near-turn notices (issue 20). The mobile number a citizen typed lives here and
    // nowhere else (events hold it masked, or not at all), erased when the ticket or its
    // day ends; `sms_outbox` holds a notice's number until the broker acknowledges it.
    r#"
    CREATE TABLE notices (
        ticket INTEGER PRIMARY KEY,
        day TEXT NOT NULL,
        mobile TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        sent_at INTEGER
    );
    CREATE TABLE sms_outbox (
        id TEXT PRIMARY KEY,
        ticket INTEGER NOT NULL,
        day TEXT NOT NULL,
        mobile TEXT NOT NULL,
        body TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    "#,
    // 11: the guide desk (issue 21). A ticket records why it is green (a reason code),
    // whether it was taken by proxy (代办) and which member of staff issued it. An
    // appointment may carry its citizen's mobile number as the hall's keyed hash (never
    // the number) and a masked form, so the desk can find it by phone; both are erased
    // at check-in and when the appointment ends.
    r#"
    ALTER TABLE tickets ADD COLUMN green_reason TEXT;
    ALTER TABLE tickets ADD COLUMN proxy INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN issued_by TEXT;
    ALTER TABLE appointments ADD COLUMN mobile TEXT;
    ALTER TABLE appointments ADD COLUMN mobile_masked TEXT;
    CREATE INDEX appointments_by_mobile ON appointments (mobile) WHERE mobile IS NOT NULL;
    "#,
    // 12: warnings followed up (预警纠错, issue 22). One row per warning (the `seq` of its
    // event) once a supervisor handled it or it was escalated to the hall server, kept
    // in step with `warning_handled` / `warning_escalated` in the transaction that
    // appends them.
    r#"
    CREATE TABLE warning_actions (
        warning INTEGER PRIMARY KEY,
        handled_at INTEGER,
        handled_by TEXT,
        outcome TEXT,
        note TEXT,
        escalated_at INTEGER
    );
    "#,
    // 13: 回访整改 (issue 22). A bad rating opens a follow-up, due at the end of the fifth
    // working day; the hall server reports its steps down. One row per rated ticket, kept
    // in step with the `follow_up_opened` / `follow_up_progressed` events in the
    // transaction that appends them (`store::follow_ups`), so supervision reads open and
    // overdue follow-ups without replaying events that retention may have archived.
    r#"
    CREATE TABLE follow_ups (
        ticket     INTEGER PRIMARY KEY,
        number     TEXT NOT NULL,
        service    TEXT NOT NULL,
        window     INTEGER,
        staff      TEXT,
        level      TEXT NOT NULL,
        reasons    TEXT NOT NULL,
        rated_at   INTEGER NOT NULL,
        due_day    TEXT NOT NULL,
        due_at     INTEGER NOT NULL,
        state      TEXT NOT NULL,
        note       TEXT,
        by_whom    TEXT,
        updated_at INTEGER NOT NULL,
        closed_at  INTEGER,
        opened_seq INTEGER NOT NULL
    );
    CREATE INDEX follow_ups_open ON follow_ups (due_at) WHERE state <> 'closed';
    "#,
    // 14: period figures (日考核、周汇总、月通报, issue 22). Running totals per service day
    // for the hall (key ''), each window, service, department, staff member and hour of
    // the day, kept in step with the events by the transaction that appends them
    // (`store::figures`); a period view sums a few hundred rows a day instead of reading
    // a month of events. `figure_reasons` counts the reasons of bad ratings the same way.
    // `figure_open` holds what a later event needs to be counted: live tickets already
    // called (their service and issue time), staff sessions (since when), and raised
    // warnings (who was at the window). `ratings_bad` finds a period's bad ratings
    // without reading the good ones. The totals of existing events are built at start
    // (`figures_built` in `meta`).
    r#"
    CREATE TABLE figures (
        day TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        issued INTEGER NOT NULL DEFAULT 0,
        called INTEGER NOT NULL DEFAULT 0,
        served INTEGER NOT NULL DEFAULT 0,
        no_shows INTEGER NOT NULL DEFAULT 0,
        transfers INTEGER NOT NULL DEFAULT 0,
        waits INTEGER NOT NULL DEFAULT 0,
        wait_sum INTEGER NOT NULL DEFAULT 0,
        wait_max INTEGER NOT NULL DEFAULT 0,
        services INTEGER NOT NULL DEFAULT 0,
        service_sum INTEGER NOT NULL DEFAULT 0,
        service_max INTEGER NOT NULL DEFAULT 0,
        over_limit INTEGER NOT NULL DEFAULT 0,
        pauses INTEGER NOT NULL DEFAULT 0,
        pause_secs INTEGER NOT NULL DEFAULT 0,
        signed_in_secs INTEGER NOT NULL DEFAULT 0,
        very_satisfied INTEGER NOT NULL DEFAULT 0,
        satisfied INTEGER NOT NULL DEFAULT 0,
        basically_satisfied INTEGER NOT NULL DEFAULT 0,
        dissatisfied INTEGER NOT NULL DEFAULT 0,
        very_dissatisfied INTEGER NOT NULL DEFAULT 0,
        warnings INTEGER NOT NULL DEFAULT 0,
        warnings_handled INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, scope, key)
    ) WITHOUT ROWID;
    CREATE TABLE figure_reasons (
        day TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        reason TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, scope, key, reason)
    ) WITHOUT ROWID;
    CREATE TABLE figure_open (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        staff TEXT,
        service TEXT,
        window INTEGER,
        since INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE INDEX ratings_bad ON ratings (day)
        WHERE json_extract(record, '$.level') IN ('不满意', '非常不满意');
    "#,
    // 15: three pages fewer in every commit (issue 18: on an SD card each page written is
    // wear and time). `events` loses `AUTOINCREMENT`, whose `sqlite_sequence` row every
    // commit rewrote, and the unique index on `id` (v7 UUIDs made here, never looked up
    // by id in this database; receivers match them). The store numbers events itself,
    // above both the newest stored and `events_high_water` in `meta`, which a trigger
    // raises when a delete (retention) removes the newest event: no number is ever used
    // twice. Removing old months, as retention does, writes nothing to `meta`.
    // `tickets_open` goes: open tickets only exist on the newest day that has tickets
    // (the engine cancels every open ticket when the day turns), and the (day, …) index
    // finds that day. The table is rebuilt with every row, its triggers and indexes.
    r#"
    INSERT OR REPLACE INTO meta (key, value) SELECT 'events_high_water', MAX(
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
        COALESCE((SELECT MAX(seq) FROM events), 0));
    CREATE TABLE events_numbered (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        at INTEGER NOT NULL,
        type TEXT NOT NULL,
        schema INTEGER NOT NULL,
        payload TEXT NOT NULL,
        delivered_at INTEGER
    );
    INSERT INTO events_numbered (seq, id, at, type, schema, payload, delivered_at)
        SELECT seq, id, at, type, schema, payload, delivered_at FROM events ORDER BY seq;
    DROP TABLE events;
    ALTER TABLE events_numbered RENAME TO events;
    CREATE TRIGGER events_append_only_update BEFORE UPDATE OF seq, id, at, type, schema, payload ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_delivered_once BEFORE UPDATE OF delivered_at ON events
        WHEN OLD.delivered_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'an event is marked delivered only once'); END;
    CREATE TRIGGER events_keep_undelivered BEFORE DELETE ON events
        WHEN OLD.delivered_at IS NULL
        BEGIN SELECT RAISE(ABORT, 'an undelivered event cannot be deleted'); END;
    CREATE TRIGGER events_high_water AFTER DELETE ON events
        WHEN OLD.seq > COALESCE((SELECT MAX(seq) FROM events), 0)
        AND OLD.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'events_high_water'), 0)
        BEGIN INSERT OR REPLACE INTO meta (key, value) VALUES ('events_high_water', OLD.seq); END;
    CREATE INDEX events_device ON events (seq) WHERE type IN ('device_fault', 'device_recovered');
    CREATE INDEX events_undelivered ON events (seq) WHERE delivered_at IS NULL;
    CREATE INDEX events_controls ON events (type, seq)
        WHERE type IN ('kiosk_locked', 'kiosk_unlocked', 'notice_shown', 'notice_cleared');
    DROP INDEX tickets_open;
    "#,
];

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// Migration 8 erases the unkeyed citizen hashes from the state and from stored
    /// events, and leaves the event log append-only afterwards.
    #[test]
    fn migration_8_drops_unkeyed_citizen_hashes_everywhere() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &super::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            r#"
            INSERT INTO tickets (id, number, seq, day, service, origin_service, class, state,
                issued_at, queue_at, recalls, no_shows, transfers, citizen, channel, alarms)
            VALUES (1, 'A001', 1, '2026-12-01', 'SB', 'SB', 'normal', 'waiting', 0, 0, 0, 0,
                0, 'aabbccddeeff00112233445566778899', 'kiosk', 0);
            INSERT INTO events (id, at, type, schema, payload) VALUES ('e1', 0,
                'ticket_issued', 1,
                '{"type":"ticket_issued","ahead":0,"ticket":{"id":1,"citizen":"aabbccddeeff00112233445566778899"}}');
            INSERT INTO events (id, at, type, schema, payload) VALUES ('e2', 0,
                'ticket_called', 1, '{"type":"ticket_called","ticket":1}');
            "#,
        )
        .unwrap();
        conn.execute_batch(super::MIGRATIONS[7]).unwrap();
        let citizen: Option<String> = conn
            .query_row("SELECT citizen FROM tickets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(citizen, None);
        let payloads: String = conn
            .query_row("SELECT group_concat(payload, '|') FROM events", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!payloads.contains("aabbcc"), "{payloads}");
        assert!(payloads.contains(r#""ticket":{"id":1}"#), "{payloads}");
        assert!(
            conn.execute("UPDATE events SET payload = '{}' WHERE id = 'e2'", [])
                .is_err(),
            "the event log is append-only again"
        );
    }

    fn digest(conn: &Connection) -> String {
        conn.query_row(
            "SELECT group_concat(seq || '|' || id || '|' || at || '|' || type || '|' || schema \
             || '|' || payload || '|' || COALESCE(delivered_at, '-'), '\n') \
             FROM (SELECT * FROM events ORDER BY seq)",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Migration 15 rebuilds `events` without `AUTOINCREMENT` and keeps every row, the
    /// numbers retention removed (in `events_high_water`), the triggers and indexes; the
    /// high-water mark then follows every delete.
    #[test]
    fn migration_15_keeps_every_event_and_every_number_ever_used() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &super::MIGRATIONS[..14] {
            conn.execute_batch(sql).unwrap();
        }
        for i in 1..=9 {
            conn.execute(
                "INSERT INTO events (id, at, type, schema, payload, delivered_at) \
                 VALUES (?1, ?2, 'ticket_called', 1, ?3, ?4)",
                rusqlite::params![
                    format!("e{i}"),
                    i * 1000,
                    format!(r#"{{"type":"ticket_called","ticket":{i}}}"#),
                    (i <= 7).then_some(i * 10)
                ],
            )
            .unwrap();
        }
        // Retention removed the oldest two and, after a long idle spell, the newest
        // delivered ones are gone too: 9 stays the newest number ever used.
        conn.execute("DELETE FROM events WHERE seq IN (1, 2)", [])
            .unwrap();
        conn.execute(
            "UPDATE events SET delivered_at = 99 WHERE seq IN (8, 9)",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM events WHERE seq IN (8, 9)", [])
            .unwrap();
        let before = digest(&conn);
        conn.execute_batch(super::MIGRATIONS[14]).unwrap();
        let mark = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'events_high_water'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(mark(&conn), 9, "from sqlite_sequence");
        assert_eq!(digest(&conn), before, "every row, every column kept");
        assert_eq!(crate::store::uplink::newest_seq(&conn).unwrap(), 9);
        let autoincrement: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'events' AND sql LIKE '%AUTOINCREMENT%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(autoincrement, 0);
        for index in ["events_device", "events_undelivered", "events_controls"] {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [index],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{index}");
        }
        conn.execute(
            "INSERT INTO events (seq, id, at, type, schema, payload) VALUES (10, 'e10', 0, 'x', 1, '{}')",
            [],
        )
        .unwrap();
        for (refused, why) in [
            (
                "UPDATE events SET payload = '{}' WHERE seq = 3",
                "append-only",
            ),
            (
                "UPDATE events SET delivered_at = 1 WHERE seq = 3",
                "delivered once",
            ),
            (
                "DELETE FROM events WHERE seq = 10",
                "an undelivered event stays",
            ),
        ] {
            assert!(conn.execute(refused, []).is_err(), "{why}");
        }
        // Removing the oldest (retention's way) leaves the mark alone...
        conn.execute("DELETE FROM events WHERE seq = 3", [])
            .unwrap();
        assert_eq!(mark(&conn), 9);
        // ...removing everything delivered, the newest too, raises it to the newest.
        conn.execute(
            "UPDATE events SET delivered_at = 5 WHERE delivered_at IS NULL",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM events", []).unwrap();
        assert_eq!(mark(&conn), 10);
        assert_eq!(crate::store::uplink::newest_seq(&conn).unwrap(), 10);
    }
}
