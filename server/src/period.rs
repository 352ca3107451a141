//! The period view and appraisal across halls (日考核、周汇总、月通报 for a county):
//! each visible hall's figures for a span of service days, every visible region's
//! sums along the code tree, the appraisal rates and a ranking of the halls — summed
//! from `period_figures` ([`crate::rollup`]), a few rows per hall and day, so a month
//! of a county answers without reading its events. The 好差评 follow-ups (回访整改) of
//! the bad ratings given in the span come from `follow_ups` ([`crate::follow_ups`]), one
//! row per bad rating.
//!
//! Which halls and regions a caller sees is the caller's business: [`period`] takes
//! them as parameters (an account's regions, or all of them).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use hallq::store::figures::Figures;
use serde::Serialize;
use tokio_postgres::Client;

use crate::config::{Hall, Region, region_parent};
use crate::follow_ups::FollowUp;
use crate::rollup::{COLUMNS, DayClock, LEVEL_KEYS, Sums, is_max};

/// The longest span asked for at once, in days.
pub const MAX_DAYS: i64 = 366;

/// A span of service days, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

/// A query parameter that cannot be used: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    /// The parameter's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadParam {
    BadParam {
        field,
        message: message.into(),
    }
}

/// Reads `month=YYYY-MM` or `from=YYYY-MM-DD&to=YYYY-MM-DD` (one of the two forms,
/// at most [`MAX_DAYS`] days).
pub fn span(q: &HashMap<String, String>) -> Result<Span, BadParam> {
    let date = |field: &'static str, v: &str| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| bad(field, format!("{v:?} is not a date YYYY-MM-DD")))
    };
    if let Some(m) = q.get("month") {
        if q.contains_key("from") || q.contains_key("to") {
            return Err(bad("month", "give month, or from and to, not both"));
        }
        let from = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
            .map_err(|_| bad("month", format!("{m:?} is not a month YYYY-MM")))?;
        let next = if from.month() == 12 {
            NaiveDate::from_ymd_opt(from.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(from.year(), from.month() + 1, 1)
        };
        let to = next
            .and_then(|n| n.pred_opt())
            .ok_or_else(|| bad("month", "out of range"))?;
        return Ok(Span { from, to });
    }
    let from = date(
        "from",
        q.get("from")
            .ok_or_else(|| bad("from", "give from=YYYY-MM-DD (and to), or month=YYYY-MM"))?,
    )?;
    let to = date(
        "to",
        q.get("to")
            .ok_or_else(|| bad("to", "give to=YYYY-MM-DD with from"))?,
    )?;
    let days = (to - from).num_days() + 1;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(bad(
            "to",
            format!("from {from} to {to}: the span must be 1 to {MAX_DAYS} days"),
        ));
    }
    Ok(Span { from, to })
}

/// Rates a supervisor compares halls by.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Appraisal {
    /// Share of 非常满意 + 满意 among the ratings, null without ratings.
    pub satisfaction: Option<f64>,
    /// Share of bad ratings (不满意 + 非常不满意), null without ratings.
    pub bad_rate: Option<f64>,
    /// Average seconds from taking a ticket to its first call.
    pub avg_wait_secs: i64,
    /// Share of the ended calls that were no-shows (no-shows / (served + no-shows)).
    pub no_show_rate: Option<f64>,
    /// Share of the raised warnings a supervisor followed up.
    pub warnings_handled_rate: Option<f64>,
    /// Share of the bad ratings' follow-ups (回访整改) closed, null without any.
    pub follow_ups_closed_rate: Option<f64>,
}

/// The 好差评 follow-ups (回访整改) of the bad ratings given in the span, as they stand.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FollowUpCounts {
    /// Bad ratings given in the span whose follow-up was opened.
    pub opened: i64,
    /// Of those, closed.
    pub closed: i64,
    /// Not closed and past their due time.
    pub overdue: i64,
    /// A step came after the due time.
    pub late: i64,
}

impl FollowUpCounts {
    fn add(&mut self, o: &FollowUpCounts) {
        self.opened += o.opened;
        self.closed += o.closed;
        self.overdue += o.overdue;
        self.late += o.late;
    }

    fn count(&mut self, f: &FollowUp) {
        self.add(&FollowUpCounts {
            opened: 1,
            closed: i64::from(f.state == "closed"),
            overdue: i64::from(f.overdue),
            late: i64::from(f.late),
        });
    }
}

/// Totals with their bad-rating reasons, before they become [`Figures`].
#[derive(Debug, Clone, Default)]
struct Totals {
    sums: Sums,
    reasons: BTreeMap<String, i64>,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.sums.add(&o.sums);
        for (r, n) in &o.reasons {
            *self.reasons.entry(r.clone()).or_default() += n;
        }
    }

    fn figures(&self) -> Figures {
        let v = &self.sums.0;
        let at = |name: &str| COLUMNS.iter().position(|c| *c == name).map_or(0, |i| v[i]);
        let avg = |sum: i64, n: i64| if n > 0 { sum / n } else { 0 };
        let levels: Vec<i64> = LEVEL_KEYS.iter().map(|k| at(k)).collect();
        let rated: i64 = levels.iter().sum();
        Figures {
            issued: at("issued"),
            called: at("called"),
            served: at("served"),
            no_shows: at("no_shows"),
            transfers: at("transfers"),
            avg_wait_secs: avg(at("wait_sum"), at("waits")),
            max_wait_secs: at("wait_max"),
            avg_service_secs: avg(at("service_sum"), at("services")),
            max_service_secs: at("service_max"),
            over_limit: at("over_limit"),
            pauses: at("pauses"),
            pause_secs: at("pause_secs"),
            signed_in_secs: at("signed_in_secs"),
            ratings: LEVEL_KEYS
                .iter()
                .copied()
                .zip(levels.iter().copied())
                .collect(),
            rated,
            satisfaction: (rated > 0).then(|| (levels[0] + levels[1]) as f64 / rated as f64),
            bad: levels[3] + levels[4],
            bad_reasons: self
                .reasons
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (r.clone(), *n))
                .collect(),
            warnings: at("warnings"),
            warnings_handled: at("warnings_handled"),
        }
    }
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn appraisal(f: &Figures, u: &FollowUpCounts) -> Appraisal {
    Appraisal {
        satisfaction: f.satisfaction,
        bad_rate: share(f.bad, f.rated),
        avg_wait_secs: f.avg_wait_secs,
        no_show_rate: share(f.no_shows, f.served + f.no_shows),
        warnings_handled_rate: share(f.warnings_handled, f.warnings),
        follow_ups_closed_rate: share(u.closed, u.opened),
    }
}

/// The order of the ranking: satisfaction (higher first, none last), then average wait
/// (shorter first), then no-show rate (lower first).
fn compare(a: &Appraisal, b: &Appraisal) -> Ordering {
    let sat = |x: &Appraisal| x.satisfaction.map_or(f64::INFINITY, |s| -s);
    sat(a)
        .total_cmp(&sat(b))
        .then(a.avg_wait_secs.cmp(&b.avg_wait_secs))
        .then(
            a.no_show_rate
                .unwrap_or(0.0)
                .total_cmp(&b.no_show_rate.unwrap_or(0.0)),
        )
}

/// One hall's figures for the span.
#[derive(Debug, Clone, Serialize)]
pub struct HallPeriod {
    /// Hall id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// The figures (the controller's period figures, without departments).
    #[serde(flatten)]
    pub figures: Figures,
    /// The follow-ups of its bad ratings in the span.
    pub follow_ups: FollowUpCounts,
    /// The rates it is compared by.
    pub appraisal: Appraisal,
}

/// A region's sums over the visible halls in it and below.
#[derive(Debug, Clone, Serialize)]
pub struct RegionPeriod {
    /// The 12-digit code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// The parent's code, when it is listed.
    pub parent: Option<String>,
    /// Halls in it and below.
    pub halls: usize,
    /// The halls' figures added up (longest wait and service: the longest).
    #[serde(flatten)]
    pub figures: Figures,
    /// The halls' follow-ups added up.
    pub follow_ups: FollowUpCounts,
    /// The rates of the sums.
    pub appraisal: Appraisal,
    /// Its place among the regions of the view with the same parent (a county's
    /// townships, a township's villages), 1 best, ranked as the halls are.
    pub rank: usize,
}

/// A hall's place in the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// 1 is best.
    pub rank: usize,
    /// Hall id.
    pub hall: String,
    /// Its name.
    pub name: String,
    /// Satisfaction (first key, higher is better; halls without ratings after the rest).
    pub satisfaction: Option<f64>,
    /// Average wait (second key, lower is better).
    pub avg_wait_secs: i64,
    /// No-show rate (third key, lower is better).
    pub no_show_rate: Option<f64>,
}

/// A row of one hall's tables.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Window number, service code, staff id, hour (`09`) or day.
    pub key: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// The follow-ups of the bad ratings at this window, of this service or staff
    /// member (not per hour or day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_ups: Option<FollowUpCounts>,
}

/// One hall in detail: per window, service, staff member, hour and day, and its bad
/// ratings.
#[derive(Debug, Clone, Serialize)]
pub struct HallDetail {
    /// Hall id.
    pub hall: String,
    /// Per window that counted.
    pub windows: Vec<Row>,
    /// Per service that counted.
    pub services: Vec<Row>,
    /// Per staff member that counted.
    pub staff: Vec<Row>,
    /// Per hour of the day with data.
    pub hours: Vec<Row>,
    /// Per day with data.
    pub days: Vec<Row>,
    /// The bad ratings given in the span with their follow-ups, the newest first (at most
    /// [`MAX_BAD_RATINGS`]; the counts above take them all).
    pub bad_ratings: Vec<FollowUp>,
}

/// The bad ratings a hall's detail lists at most.
pub const MAX_BAD_RATINGS: usize = 1000;

/// The period view.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Every visible hall.
    pub halls: Vec<HallPeriod>,
    /// Every visible region.
    pub regions: Vec<RegionPeriod>,
    /// The halls ranked.
    pub ranking: Vec<Ranked>,
    /// Milliseconds the database took.
    pub elapsed_ms: u64,
}

/// `sum(c)` per column (`max` for the longest), as SQL.
fn sums_sql() -> String {
    COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if is_max(i) {
                format!("coalesce(max({c}), 0)::int8")
            } else {
                format!("coalesce(sum({c}), 0)::int8")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sums_of(r: &tokio_postgres::Row, from: usize) -> Sums {
    let mut s = Sums::default();
    for (i, v) in s.0.iter_mut().enumerate() {
        *v = r.get(from + i);
    }
    s
}

/// The span's instants on the halls' clock, ms: from the start of its first day
/// (inclusive) to the start of the day after its last (exclusive).
pub fn span_ms(clock: &DayClock, span: Span) -> (i64, i64) {
    let after = span.to.succ_opt().unwrap_or(span.to);
    (clock.day_start(span.from), clock.day_start(after))
}

/// The view of `span` over `halls` and `regions` (what the caller may see), the
/// follow-ups overdue at `now` (ms).
pub async fn period(
    db: &Client,
    halls: &[&Hall],
    regions: &[&Region],
    span: Span,
    clock: &DayClock,
    now: i64,
) -> Result<PeriodView, tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let (from, to) = (span.from.to_string(), span.to.to_string());
    let ids: Vec<&str> = halls.iter().map(|h| h.id.as_str()).collect();
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let (from_ms, to_ms) = span_ms(clock, span);
    let mut follow_ups: HashMap<String, FollowUpCounts> = HashMap::new();
    for r in db
        .query(
            "SELECT hall_id, count(*), count(*) FILTER (WHERE state = 'closed'),
                    count(*) FILTER (WHERE state <> 'closed' AND due_at < $4),
                    count(*) FILTER (WHERE late)
             FROM follow_ups
             WHERE hall_id = ANY($1) AND rated_at >= $2 AND rated_at < $3
             GROUP BY hall_id",
            &[&ids, &from_ms, &to_ms, &now],
        )
        .await?
    {
        follow_ups.insert(
            r.get(0),
            FollowUpCounts {
                opened: r.get(1),
                closed: r.get(2),
                overdue: r.get(3),
                late: r.get(4),
            },
        );
    }
    let sql = format!(
        "SELECT hall_id, {} FROM period_figures
         WHERE scope = 'hall' AND day BETWEEN $1::text::date AND $2::text::date
           AND hall_id = ANY($3)
         GROUP BY hall_id",
        sums_sql()
    );
    for r in db.query(&sql, &[&from, &to, &ids]).await? {
        totals.entry(r.get(0)).or_default().sums = sums_of(&r, 1);
    }
    for r in db
        .query(
            "SELECT hall_id, reason, sum(n)::int8 FROM period_reasons
             WHERE scope = 'hall' AND day BETWEEN $1::text::date AND $2::text::date
               AND hall_id = ANY($3)
             GROUP BY hall_id, reason",
            &[&from, &to, &ids],
        )
        .await?
    {
        totals
            .entry(r.get(0))
            .or_default()
            .reasons
            .insert(r.get(1), r.get(2));
    }
    let listed: BTreeMap<&str, &Region> = regions.iter().map(|r| (r.code.as_str(), *r)).collect();
    let mut region_totals: BTreeMap<&str, (usize, Totals, FollowUpCounts)> = BTreeMap::new();
    let mut out_halls = Vec::new();
    for h in halls {
        let t = totals.remove(&h.id).unwrap_or_default();
        let u = follow_ups.remove(&h.id).unwrap_or_default();
        let mut code = Some(h.region.clone());
        while let Some(c) = code {
            if let Some((k, _)) = listed.get_key_value(c.as_str()) {
                let e = region_totals.entry(k).or_default();
                e.0 += 1;
                e.1.add(&t);
                e.2.add(&u);
            }
            code = region_parent(&c);
        }
        let figures = t.figures();
        out_halls.push(HallPeriod {
            id: h.id.clone(),
            name: h.name.clone(),
            region: h.region.clone(),
            appraisal: appraisal(&figures, &u),
            figures,
            follow_ups: u,
        });
    }
    let mut out_regions: Vec<RegionPeriod> = regions
        .iter()
        .map(|r| {
            let (n, t, u) = region_totals
                .get(r.code.as_str())
                .cloned()
                .unwrap_or_default();
            let figures = t.figures();
            RegionPeriod {
                code: r.code.clone(),
                name: r.name.clone(),
                parent: region_parent(&r.code).filter(|p| listed.contains_key(p.as_str())),
                halls: n,
                appraisal: appraisal(&figures, &u),
                figures,
                follow_ups: u,
                rank: 0,
            }
        })
        .collect();
    rank_regions(&mut out_regions);
    Ok(PeriodView {
        from,
        to,
        ranking: ranking(&out_halls),
        halls: out_halls,
        regions: out_regions,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The halls ranked: satisfaction (higher first, halls without ratings last), then
/// average wait (shorter first), then no-show rate (lower first), then id.
pub fn ranking(halls: &[HallPeriod]) -> Vec<Ranked> {
    let mut order: Vec<&HallPeriod> = halls.iter().collect();
    order.sort_by(|a, b| compare(&a.appraisal, &b.appraisal).then(a.id.cmp(&b.id)));
    order
        .into_iter()
        .enumerate()
        .map(|(i, h)| Ranked {
            rank: i + 1,
            hall: h.id.clone(),
            name: h.name.clone(),
            satisfaction: h.appraisal.satisfaction,
            avg_wait_secs: h.appraisal.avg_wait_secs,
            no_show_rate: h.appraisal.no_show_rate,
        })
        .collect()
}

/// Sets each region's `rank` among the regions with the same parent, ordered as the
/// halls are ([`ranking`]), then by code.
pub fn rank_regions(regions: &mut [RegionPeriod]) {
    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&regions[a], &regions[b]);
        x.parent
            .cmp(&y.parent)
            .then(compare(&x.appraisal, &y.appraisal))
            .then(x.code.cmp(&y.code))
    });
    let mut places: HashMap<Option<String>, usize> = HashMap::new();
    for i in order {
        let place = places.entry(regions[i].parent.clone()).or_default();
        *place += 1;
        regions[i].rank = *place;
    }
}

/// One hall's tables for the span, the follow-ups overdue at `now` (ms).
pub async fn detail(
    db: &Client,
    hall: &Hall,
    span: Span,
    clock: &DayClock,
    now: i64,
) -> Result<HallDetail, tokio_postgres::Error> {
    let (from, to) = (span.from.to_string(), span.to.to_string());
    let id = hall.id.as_str();
    let mut by: BTreeMap<(String, String), Totals> = BTreeMap::new();
    let sql = format!(
        "SELECT scope, key, {} FROM period_figures
         WHERE hall_id = $1 AND day BETWEEN $2::text::date AND $3::text::date
         GROUP BY scope, key",
        sums_sql()
    );
    for r in db.query(&sql, &[&id, &from, &to]).await? {
        by.entry((r.get(0), r.get(1))).or_default().sums = sums_of(&r, 2);
    }
    for r in db
        .query(
            "SELECT scope, key, reason, sum(n)::int8 FROM period_reasons
             WHERE hall_id = $1 AND day BETWEEN $2::text::date AND $3::text::date
             GROUP BY scope, key, reason",
            &[&id, &from, &to],
        )
        .await?
    {
        by.entry((r.get(0), r.get(1)))
            .or_default()
            .reasons
            .insert(r.get(2), r.get(3));
    }
    let sql = format!(
        "SELECT day::text, {} FROM period_figures
         WHERE hall_id = $1 AND scope = 'hall' AND day BETWEEN $2::text::date AND $3::text::date
         GROUP BY day ORDER BY day",
        sums_sql()
    );
    let days = db
        .query(&sql, &[&id, &from, &to])
        .await?
        .iter()
        .map(|r| Row {
            key: r.get(0),
            figures: Totals {
                sums: sums_of(r, 1),
                reasons: BTreeMap::new(),
            }
            .figures(),
            follow_ups: None,
        })
        .collect();
    let (from_ms, to_ms) = span_ms(clock, span);
    let mut bad_ratings = crate::follow_ups::rated_between(db, hall, from_ms, to_ms, now).await?;
    let mut counted: BTreeMap<(&str, String), FollowUpCounts> = BTreeMap::new();
    for f in &bad_ratings {
        let keys = [
            ("window", f.window.map(|w| w.to_string())),
            ("service", f.service.clone()),
            ("staff", f.staff.clone()),
        ];
        for (scope, key) in keys {
            if let Some(k) = key {
                counted.entry((scope, k)).or_default().count(f);
            }
        }
    }
    bad_ratings.truncate(MAX_BAD_RATINGS);
    let table = |scope: &str| -> Vec<Row> {
        // Windows, services and staff carry their follow-ups, zero where none.
        let followed = matches!(scope, "window" | "service" | "staff");
        let mut rows: Vec<Row> = by
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|((_, k), t)| Row {
                key: k.clone(),
                figures: t.figures(),
                follow_ups: followed.then(FollowUpCounts::default),
            })
            .collect();
        for ((_, k), u) in counted.iter().filter(|((s, _), _)| *s == scope) {
            match rows.iter_mut().find(|r| r.key == *k) {
                Some(r) => r.follow_ups = Some(*u),
                None => rows.push(Row {
                    key: k.clone(),
                    figures: Totals::default().figures(),
                    follow_ups: Some(*u),
                }),
            }
        }
        // Windows by number, the rest by key.
        rows.sort_by(|a, b| {
            (a.key.parse::<i64>().ok(), &a.key).cmp(&(b.key.parse::<i64>().ok(), &b.key))
        });
        rows
    };
    Ok(HallDetail {
        hall: id.to_string(),
        windows: table("window"),
        services: table("service"),
        staff: table("staff"),
        hours: table("hour"),
        days,
        bad_ratings,
    })
}

/// The regions at and below `code`, and the halls in them.
pub fn within<'a>(
    code: &str,
    regions: &'a [Region],
    halls: &'a [Hall],
) -> (Vec<&'a Region>, Vec<&'a Hall>) {
    let under = |c: &str| {
        let mut at = Some(c.to_string());
        while let Some(x) = at {
            if x == code {
                return true;
            }
            at = region_parent(&x);
        }
        false
    };
    (
        regions.iter().filter(|r| under(&r.code)).collect(),
        halls.iter().filter(|h| under(&h.region)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn spans_are_read_and_refusals_name_the_field() {
        let m = span(&q(&[("month", "2026-12")])).expect("month");
        assert_eq!(
            (m.from.to_string(), m.to.to_string()),
            ("2026-12-01".into(), "2026-12-31".into())
        );
        let r = span(&q(&[("from", "2026-11-03"), ("to", "2026-11-03")])).expect("day");
        assert_eq!(r.from, r.to);
        for (pairs, field) in [
            (vec![("month", "2026-13")], "month"),
            (vec![("month", "2026-12"), ("from", "2026-12-01")], "month"),
            (vec![], "from"),
            (vec![("from", "2026-12-01")], "to"),
            (vec![("from", "yesterday"), ("to", "2026-12-01")], "from"),
            (vec![("from", "2026-12-02"), ("to", "2026-12-01")], "to"),
            (vec![("from", "2024-01-01"), ("to", "2026-12-01")], "to"),
        ] {
            assert_eq!(
                span(&q(&pairs)).map_err(|e| e.field),
                Err(field),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn halls_rank_by_satisfaction_then_wait() {
        let hall = |id: &str, sat: Option<f64>, wait: i64| HallPeriod {
            id: id.into(),
            name: id.into(),
            region: "330122000000".into(),
            figures: Totals::default().figures(),
            follow_ups: FollowUpCounts::default(),
            appraisal: Appraisal {
                satisfaction: sat,
                avg_wait_secs: wait,
                ..Appraisal::default()
            },
        };
        let ranked = ranking(&[
            hall("none", None, 1),
            hall("slow", Some(0.9), 300),
            hall("fast", Some(0.9), 100),
            hall("best", Some(1.0), 900),
        ]);
        let order: Vec<&str> = ranked.iter().map(|r| r.hall.as_str()).collect();
        assert_eq!(order, ["best", "fast", "slow", "none"]);
        assert_eq!(ranked[3].rank, 4);
    }

    #[test]
    fn regions_rank_among_their_siblings_as_halls_do() {
        let region = |code: &str, parent: Option<&str>, sat: Option<f64>, wait: i64| RegionPeriod {
            code: code.into(),
            name: code.into(),
            parent: parent.map(str::to_string),
            halls: 1,
            figures: Totals::default().figures(),
            follow_ups: FollowUpCounts::default(),
            appraisal: Appraisal {
                satisfaction: sat,
                avg_wait_secs: wait,
                ..Appraisal::default()
            },
            rank: 0,
        };
        let county = Some("330122000000");
        let town = Some("330122100000");
        let mut regions = vec![
            region("330122000000", None, Some(0.5), 100),
            region("330122100000", county, Some(0.5), 300),
            region("330122200000", county, None, 10),
            region("330122300000", county, Some(0.5), 200),
            region("330122400000", county, Some(0.9), 900),
            region("330122100201", town, Some(0.1), 10),
            region("330122100202", town, Some(0.2), 10),
        ];
        rank_regions(&mut regions);
        let ranks: Vec<(&str, usize)> = regions.iter().map(|r| (&r.code[6..], r.rank)).collect();
        assert_eq!(
            ranks,
            [
                ("000000", 1),
                ("100000", 3),
                ("200000", 4),
                ("300000", 2),
                ("400000", 1),
                ("100201", 2),
                ("100202", 1),
            ]
        );
    }

    #[test]
    fn follow_ups_count_closed_overdue_and_late() {
        let f = |state: &str, overdue: bool, late: bool| FollowUp {
            hall_id: "h".into(),
            hall_name: "h".into(),
            controller_id: "c".into(),
            ticket: 1,
            number: "A001".into(),
            service: None,
            window: None,
            staff: None,
            level: None,
            reasons: vec![],
            rated_at: None,
            due_day: None,
            due_at: None,
            overdue,
            state: state.into(),
            steps: serde_json::json!([]),
            late,
        };
        let mut u = FollowUpCounts::default();
        for x in [
            f("open", true, false),
            f("closed", false, true),
            f("rectified", false, false),
            f("closed", false, false),
        ] {
            u.count(&x);
        }
        assert_eq!(
            u,
            FollowUpCounts {
                opened: 4,
                closed: 2,
                overdue: 1,
                late: 1
            }
        );
        let a = appraisal(&Totals::default().figures(), &u);
        assert_eq!(a.follow_ups_closed_rate, Some(0.5));
        assert_eq!(
            appraisal(&Totals::default().figures(), &FollowUpCounts::default())
                .follow_ups_closed_rate,
            None
        );
    }

    #[test]
    fn a_span_runs_from_its_first_days_start_to_the_next_after_its_last() {
        let clock = DayClock::default(); // +08:00, days from 03:00
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day");
        let (from, to) = span_ms(
            &clock,
            Span {
                from: day("2026-12-01"),
                to: day("2026-12-02"),
            },
        );
        // 2026-12-01 03:00 +08:00 is 2026-11-30 19:00 UTC.
        assert_eq!(from, 1_796_065_200_000);
        assert_eq!(to - from, 2 * 86_400_000);
        assert_eq!(clock.day(from), Some(day("2026-12-01")));
        assert_eq!(clock.day(to - 1), Some(day("2026-12-02")));
        assert_eq!(clock.day(to), Some(day("2026-12-03")));
    }

    #[test]
    fn totals_become_the_controllers_figures() {
        let mut t = Totals::default();
        t.sums.0[0] = 4; // issued
        t.sums.0[5] = 2; // waits
        t.sums.0[6] = 90; // wait_sum
        t.sums.0[15] = 1; // very_satisfied
        t.sums.0[18] = 1; // dissatisfied
        t.reasons.insert("态度差".into(), 1);
        let f = t.figures();
        assert_eq!((f.issued, f.avg_wait_secs, f.rated, f.bad), (4, 45, 2, 1));
        assert_eq!(f.satisfaction, Some(0.5));
        assert_eq!(f.bad_reasons.get("态度差"), Some(&1));
    }
}
