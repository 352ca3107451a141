//! Gap repair: a controller's events are numbered 1, 2, 3 … without gaps, so a missing
//! seq is a lost message (in flight to an instance that died, or published while no
//! instance was subscribed). Every few seconds one instance looks at the controllers
//! whose stored events do not reach their highest seq (or the `events.last_seq` their
//! state reports), finds the first missing seq, and once the gap has stayed open for
//! `repair_after_secs` asks the controller for everything from there with the
//! `resend` command. The events come again with their ids, and what was already stored
//! adds nothing. Which instance asks is settled in the database: the one whose
//! conditional update of `resend_at` wins.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::db::{self, DbError};
use crate::metrics::Metrics;

/// Where a controller's events stop being whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    /// Everything up to this seq is stored.
    pub contiguous: i64,
    /// The first missing seq, if any below `target`.
    pub first_missing: Option<i64>,
}

impl Hole {
    /// Stored without a gap up to `contiguous`, of events up to `target`.
    fn at(contiguous: i64, target: i64) -> Hole {
        Hole {
            contiguous,
            first_missing: (contiguous < target).then_some(contiguous + 1),
        }
    }
}

/// Moves `contiguous` up along `seqs` (ascending, all above it) while they follow on;
/// whether a seq was missing before the list ran out.
fn walk(contiguous: &mut i64, seqs: impl IntoIterator<Item = i64>) -> bool {
    for seq in seqs {
        if seq != *contiguous + 1 {
            return true;
        }
        *contiguous = seq;
    }
    false
}

/// [`find_hole`] for every gapped controller of a pass in one query: the first
/// `PAGE` stored seqs above each one's contiguous mark (a gap is nearly always among
/// them); only a controller whose page runs out without one is paged further alone.
async fn find_holes(db: &Client, gapped: Vec<Gapped>) -> Result<Vec<(Gapped, Hole)>, DbError> {
    const PAGE: i64 = 500;
    if gapped.is_empty() {
        return Ok(Vec::new());
    }
    let c: Vec<&str> = gapped.iter().map(|g| g.controller.as_str()).collect();
    let f: Vec<i64> = gapped.iter().map(|g| g.from).collect();
    let rows = db
        .query(
            "SELECT u.i, e.seq
             FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS u(c, f, i)
             CROSS JOIN LATERAL (
               SELECT seq FROM event_keys WHERE controller_id = u.c AND seq > u.f
               ORDER BY seq LIMIT $3) e
             ORDER BY u.i, e.seq",
            &[&c, &f, &PAGE],
        )
        .await?;
    let mut seqs: Vec<Vec<i64>> = vec![Vec::new(); gapped.len()];
    for r in &rows {
        let i: i64 = r.get(0);
        if let Some(list) = usize::try_from(i - 1).ok().and_then(|i| seqs.get_mut(i)) {
            list.push(r.get(1));
        }
    }
    let mut out = Vec::with_capacity(gapped.len());
    for (g, list) in gapped.into_iter().zip(seqs) {
        let mut contiguous = g.from;
        let broke = walk(&mut contiguous, list.iter().copied());
        let hole = if !broke && list.len() as i64 == PAGE {
            find_hole(db, &g.controller, contiguous, g.target).await?
        } else {
            Hole::at(contiguous, g.target)
        };
        out.push((g, hole));
    }
    Ok(out)
}

/// Writes what a pass found in one statement: how far each controller is stored
/// without a gap, and since when a gap has been open (cleared when it closed). Rows a
/// batch of the ingest holds are skipped, not waited for (under load nearly every
/// controller is in some batch; the next pass writes them): a pass never holds up the
/// ingest.
async fn mark(db: &Client, holes: &[(Gapped, Hole)], now: i64) -> Result<(), DbError> {
    if holes.is_empty() {
        return Ok(());
    }
    let c: Vec<&str> = holes.iter().map(|(g, _)| g.controller.as_str()).collect();
    let s: Vec<i64> = holes.iter().map(|(_, h)| h.contiguous).collect();
    let open: Vec<bool> = holes
        .iter()
        .map(|(_, h)| h.first_missing.is_some())
        .collect();
    db.execute(
        "UPDATE controllers k SET contiguous_seq = greatest(k.contiguous_seq, m.s),
                gap_since = CASE WHEN m.open THEN coalesce(k.gap_since, $4) END
         FROM (SELECT c.controller_id, u.s, u.open
               FROM unnest($1::text[], $2::int8[], $3::bool[]) AS u(c, s, open)
               JOIN controllers c ON c.controller_id = u.c
               ORDER BY c.controller_id
               FOR UPDATE OF c SKIP LOCKED) m
         WHERE k.controller_id = m.controller_id",
        &[&c, &s, &open, &now],
    )
    .await?;
    Ok(())
}

/// Walks a controller's stored seqs upward from `from` (everything at or below it is
/// stored) to `target` and finds the first missing one.
pub async fn find_hole(
    db: &Client,
    controller: &str,
    from: i64,
    target: i64,
) -> Result<Hole, DbError> {
    const PAGE: i64 = 10_000;
    let mut contiguous = from;
    loop {
        let rows = db
            .query(
                "SELECT seq FROM event_keys WHERE controller_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&controller, &contiguous, &PAGE],
            )
            .await?;
        let broke = walk(&mut contiguous, rows.iter().map(|r| r.get::<_, i64>(0)));
        if broke || (rows.len() as i64) < PAGE {
            return Ok(Hole::at(contiguous, target));
        }
    }
}

/// The repair settings.
#[derive(Debug, Clone)]
pub struct Repair {
    /// `<prefix>` of the controllers' topics.
    pub prefix: String,
    /// Ask again after a gap has stayed open this long, and not more often.
    pub after: Duration,
    /// How often to look.
    pub every: Duration,
}

/// One controller with a gap, as the query reads it.
struct Gapped {
    controller: String,
    hall: String,
    from: i64,
    target: i64,
    gap_since: Option<i64>,
    resend_at: Option<i64>,
}

/// Runs until `shutdown`: every `repair.every`, the gap repair's pass, and the pushes
/// not answered sent again ([`crate::push::resend_due`]).
pub async fn run(
    repair: Repair,
    db_url: String,
    client: AsyncClient,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut db: Option<Client> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(repair.every) => {}
            _ = shutdown.changed() => return,
        }
        if db.as_ref().is_none_or(Client::is_closed) {
            db = db::connect(&db_url, Duration::ZERO).await.ok();
        }
        let Some(conn) = db.as_ref() else { continue };
        if let Err(e) = pass(&repair, conn, &client, &metrics).await {
            tracing::warn!("gap repair: {e}");
        }
        let pusher = crate::push::Pusher {
            client: client.clone(),
            prefix: repair.prefix.clone(),
        };
        if let Err(e) = crate::push::resend_due(
            conn,
            &pusher,
            repair.after.as_millis() as i64,
            crate::now_ms(),
        )
        .await
        {
            tracing::warn!("pushes not answered: {e}");
        }
    }
}

/// One look at every controller with a gap.
pub async fn pass(
    repair: &Repair,
    db: &Client,
    client: &AsyncClient,
    metrics: &Metrics,
) -> Result<(), DbError> {
    let gapped: Vec<Gapped> = db
        .query(
            "SELECT controller_id, hall_id, greatest(contiguous_seq, base_seq - 1),
                    greatest(max_seq, coalesce(reported_seq, 0)), gap_since, resend_at
             FROM controllers
             WHERE contiguous_seq < greatest(max_seq, coalesce(reported_seq, 0))",
            &[],
        )
        .await?
        .iter()
        .map(|r| Gapped {
            controller: r.get(0),
            hall: r.get(1),
            from: r.get(2),
            target: r.get(3),
            gap_since: r.get(4),
            resend_at: r.get(5),
        })
        .collect();
    let now = crate::now_ms();
    let after = repair.after.as_millis() as i64;
    let holes = find_holes(db, gapped).await?;
    mark(db, &holes, now).await?;
    let mut open = 0;
    for (g, hole) in holes {
        let Some(first) = hole.first_missing else {
            continue;
        };
        open += 1;
        let since = g.gap_since.unwrap_or(now);
        let due = now - since >= after && g.resend_at.is_none_or(|t| now - t >= after);
        if !due {
            continue;
        }
        // One instance asks: the first to move `resend_at` on (rare enough to wait for
        // the row).
        let claimed = db
            .execute(
                "UPDATE controllers SET resend_at = $2, resend_from = $3, resends = resends + 1
                 WHERE controller_id = $1 AND resend_at IS NOT DISTINCT FROM $4",
                &[&g.controller, &now, &first, &g.resend_at],
            )
            .await?;
        if claimed == 0 {
            continue;
        }
        let cmd = serde_json::json!({
            "id": format!("resend-{}", uuid::Uuid::new_v4()),
            "command": "resend",
            "from_seq": first,
        });
        let topic = format!("{}/{}/{}/cmd", repair.prefix, g.hall, g.controller);
        tracing::info!(
            "{}: seq {first} missing (stored to {}, highest {}): asking for a resend",
            g.controller,
            hole.contiguous,
            g.target
        );
        match client
            .publish(topic, QoS::AtLeastOnce, false, cmd.to_string().into_bytes())
            .await
        {
            Ok(()) => metrics.resend_asked(),
            Err(e) => tracing::warn!("publishing resend to {}: {e}", g.controller),
        }
    }
    metrics.set_open_gaps(open);
    Ok(())
}

/// A controller's answer on `cmd/ack`. A `resend` answer is kept on the controller's
/// row; when it says events below a seq are only in the controller's archive, those are
/// no longer waited for.
pub async fn answered(
    db: &Client,
    controller: &str,
    ack: &serde_json::Value,
) -> Result<(), DbError> {
    if ack.get("command").and_then(serde_json::Value::as_str) != Some("resend") {
        return Ok(());
    }
    db.execute(
        "UPDATE controllers SET resend_result = $2 WHERE controller_id = $1",
        &[&controller, &Json(ack)],
    )
    .await?;
    if let Some(base) = ack
        .pointer("/result/archived_before")
        .and_then(serde_json::Value::as_i64)
    {
        db.execute(
            "UPDATE controllers SET base_seq = $2,
                    stored = (SELECT count(*) FROM event_keys WHERE controller_id = $1 AND seq >= $2)
             WHERE controller_id = $1 AND base_seq < $2",
            &[&controller, &base],
        )
        .await?;
    }
    Ok(())
}
