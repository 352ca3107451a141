//! The period view of supervision (issue 22): `GET /api/v1/supervision/period` for any
//! day, ISO week, month or range of days, and `GET /api/v1/supervision/period.csv`, one
//! table of it as CSV. What they hold: `report::period`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Query, StaffAuth};
use crate::report::Period;
use crate::report::period::{self as view, PeriodView};
use crate::store::figures::Rules;
use crate::store::staff::Permission;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/supervision/period", get(period))
        .route("/api/v1/supervision/period.csv", get(period_csv))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodQuery {
    day: Option<String>,
    week: Option<String>,
    month: Option<String>,
    from: Option<String>,
    to: Option<String>,
    table: Option<String>,
}

fn date(field: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    text.parse()
        .map_err(|_| ApiError::field(field, "use YYYY-MM-DD"))
}

/// Exactly one of `day`, `week`, `month`, or `from` with `to`.
fn period_of(q: &PeriodQuery) -> Result<Period, ApiError> {
    let given = [
        q.day.is_some(),
        q.week.is_some(),
        q.month.is_some(),
        q.from.is_some() || q.to.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        let field = if q.from.is_some() || q.to.is_some() {
            "from"
        } else {
            "day"
        };
        return Err(ApiError::field(
            field,
            "give one period: day, week, month, or from and to",
        ));
    }
    match (&q.day, &q.week, &q.month, &q.from, &q.to) {
        (Some(d), ..) => Ok(Period::day(date("day", d)?)),
        (_, Some(w), ..) => {
            Period::week(w).ok_or_else(|| ApiError::field("week", "use YYYY-Www, e.g. 2026-W48"))
        }
        (_, _, Some(m), ..) => {
            Period::month(m).ok_or_else(|| ApiError::field("month", "use YYYY-MM"))
        }
        (_, _, _, Some(f), Some(t)) => {
            let (from, to) = (date("from", f)?, date("to", t)?);
            Period::range(from, to).ok_or_else(|| {
                ApiError::field(
                    "to",
                    format!(
                        "to must be on or after from, at most {} days",
                        view::MAX_DAYS
                    ),
                )
            })
        }
        (_, _, _, None, _) => Err(ApiError::field("from", "give from with to")),
        (_, _, _, _, None) => Err(ApiError::field("to", "give to with from")),
    }
}

async fn build(s: &AppState, p: Period) -> Result<(PeriodView, Rules), ApiError> {
    let setup = s.hall.in_force().setup.clone();
    let rules = Rules::of(&setup);
    let now = crate::core::wall_now().0;
    let view = s
        .with_auth_db(move |c| view::build(c, &setup, p, now))
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "period figures could not be read");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
        })?;
    Ok((view, rules))
}

async fn period(
    State(s): State<AppState>,
    auth: StaffAuth,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Permission::Supervisor)?;
    if q.table.is_some() {
        return Err(ApiError::field(
            "table",
            "only the CSV (period.csv) takes a table",
        ));
    }
    let (view, _) = build(&s, period_of(&q)?).await?;
    let mut body = json!(view);
    body["hall_name"] = json!(s.config.hall.name);
    Ok(Json(body))
}

async fn period_csv(
    State(s): State<AppState>,
    auth: StaffAuth,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    auth.require(Permission::Supervisor)?;
    let table = q.table.clone().unwrap_or_else(|| "hall".into());
    if !view::TABLES.contains(&table.as_str()) {
        return Err(ApiError::field(
            "table",
            format!("use one of {}", view::TABLES.join(", ")),
        ));
    }
    let (view, rules) = build(&s, period_of(&q)?).await?;
    let text = view.csv(&table, &rules).unwrap_or_default();
    let file = format!("hallq-{}_{}-{table}.csv", view.from, view.to);
    Ok(super::supervision::csv_download(text, &file))
}
