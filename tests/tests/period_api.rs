//! The period figures (issue 22) on the real daemon: what a day of window work adds up
//! to on `GET /api/v1/supervision/period` in each of its four forms, the CSV of a
//! table, `hallq report --staff`, the refusals that name the parameter, and figures
//! that neither a restart doubles nor a rebuild from the stored events changes.

use hallq_tests::{Hall, client, send, sign_in};
use serde_json::{Value, json};

fn act(url: &str, token: &str, action: &str, body: Value) {
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/windows/1/{action}"))
            .header("Authorization", token)
            .send_json(body),
    );
    assert_eq!(s, 200, "{action}: {b}");
}

fn get(url: &str, path: &str, token: &str) -> (u16, Value) {
    send(
        client()
            .get(format!("{url}{path}"))
            .header("Authorization", token)
            .call(),
    )
}

fn period(url: &str, query: &str, token: &str) -> Value {
    let (s, b) = get(url, &format!("/api/v1/supervision/period?{query}"), token);
    assert_eq!(s, 200, "{query}: {b}");
    b
}

/// The figures that do not move with the clock (time signed in does).
fn steady(f: &Value) -> Value {
    let mut f = f.clone();
    if let Some(o) = f.as_object_mut() {
        o.remove("signed_in_secs");
    }
    f
}

#[test]
fn a_days_window_work_adds_up_in_every_period_form_and_survives_a_restart_and_a_rebuild() {
    let hall = Hall::new();
    hall.add_staff_named("S001", "张三", "135790", &["--window", "1"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    let d = hall.start();
    let url = d.url.clone();
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let (s, t) = send(
            client()
                .post(format!("{url}/api/v1/tickets"))
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201, "{t}");
        tickets.push(t["ticket"]["id"].as_u64().expect("id"));
    }
    let clerk = sign_in(&url, "S001", "135790", Some(1));
    act(&url, &clerk, "call-next", json!({}));
    act(&url, &clerk, "start", json!({}));
    act(&url, &clerk, "finish", json!({}));
    let (s, b) = send(
        client()
            .post(format!("{url}/api/v1/ratings"))
            .header("X-Rating-Pad", "1")
            .send_json(json!({"ticket": tickets[0], "level": "不满意", "reasons": ["办事效率低"]})),
    );
    assert_eq!(s, 201, "{b}");
    act(&url, &clerk, "pause", json!({"reason": "break"}));
    act(&url, &clerk, "resume", json!({}));
    act(&url, &clerk, "call-next", json!({}));
    act(&url, &clerk, "transfer", json!({"service": "MZ"}));

    let sup = sign_in(&url, "J001", "246801", None);
    let today = period(&url, "month=2000-01", &sup)["today"]
        .as_str()
        .expect("today")
        .to_string();
    let day = period(&url, &format!("day={today}"), &sup);
    let h = &day["hall"];
    assert_eq!(
        (&h["issued"], &h["served"], &h["transfers"], &h["pauses"]),
        (&json!(3), &json!(1), &json!(1), &json!(1)),
        "{h}"
    );
    assert_eq!(h["ratings"]["dissatisfied"], 1, "{h}");
    assert_eq!((&h["rated"], &h["bad"]), (&json!(1), &json!(1)));
    assert_eq!(h["satisfaction"], 0.0);
    assert_eq!(h["bad_reasons"], json!({"办事效率低": 1}));
    let staff = &day["staff"][0];
    assert_eq!(
        (&staff["key"], &staff["name"]),
        (&json!("S001"), &json!("张三"))
    );
    assert_eq!((&staff["called"], &staff["served"]), (&json!(2), &json!(1)));
    let w1 = day["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .find(|w| w["key"] == "1")
        .expect("window 1");
    assert_eq!((&w1["called"], &w1["pauses"]), (&json!(2), &json!(1)));
    let sb = day["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["key"] == "SB")
        .expect("SB");
    assert_eq!((&sb["issued"], &sb["transfers"]), (&json!(3), &json!(1)));
    assert_eq!(sb["department"], "县人力资源和社会保障局");
    assert_eq!(sb["name"]["zh-CN"], "社会保障");
    assert_eq!(
        day["departments"][0]["key"], "县人力资源和社会保障局",
        "{}",
        day["departments"]
    );
    let hours: i64 = day["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .map(|h| h["issued"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(hours, 3);
    assert_eq!(day["days"].as_array().map(Vec::len), Some(1));
    let bad = &day["bad_ratings"][0];
    assert_eq!(
        (&bad["staff_name"], &bad["level"], &bad["reasons"]),
        (
            &json!("张三"),
            &json!("dissatisfied"),
            &json!(["办事效率低"])
        )
    );

    // The same day through the other three forms.
    let date = chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").expect("date");
    use chrono::Datelike;
    let iso = date.iso_week();
    for q in [
        format!("month={}", &today[..7]),
        format!("week={}-W{:02}", iso.year(), iso.week()),
        format!("from={}&to={today}", date - chrono::Duration::days(30)),
    ] {
        let other = period(&url, &q, &sup);
        assert_eq!(steady(&other["hall"]), steady(h), "{q}");
    }

    // Refusals name the parameter.
    for (q, field) in [
        ("day=2026-13-01", "day"),
        ("month=2026", "month"),
        ("week=2026-48", "week"),
        ("day=2026-12-01&month=2026-12", "day"),
        ("from=2026-12-01", "to"),
        ("from=2026-12-02&to=2026-12-01", "to"),
        ("from=2024-01-01&to=2026-12-01", "to"),
        ("day=2026-12-01&table=staff", "table"),
    ] {
        let (s, b) = get(&url, &format!("/api/v1/supervision/period?{q}"), &sup);
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (422, Some(field)),
            "{q}: {b}"
        );
    }
    let (s, _) = send(
        client()
            .get(format!("{url}/api/v1/supervision/period?day={today}"))
            .call(),
    );
    assert_eq!(s, 401);
    let (s, b) = get(&url, "/api/v1/supervision/period?day=2026-12-01", &clerk);
    assert_eq!(s, 403, "{b}");

    // One table as CSV.
    let resp = client()
        .get(format!(
            "{url}/api/v1/supervision/period.csv?day={today}&table=staff"
        ))
        .header("Authorization", &sup)
        .call()
        .expect("csv");
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.contains(&format!("hallq-{today}_{today}-staff.csv")),
        "{disposition}"
    );
    let csv = resp.into_body().read_to_string().expect("csv text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("key,name,department,issued,called,served"));
    assert!(lines[1].starts_with("S001,张三,,0,2,1,"), "{csv}");
    let (s, b) = get(
        &url,
        &format!("/api/v1/supervision/period.csv?day={today}&table=people"),
        &sup,
    );
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("table")));

    // `hallq report --staff` reads the same figures.
    let text = hall.cli(&["report", "--staff", "--day", &today]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("S001") && l.contains("张三")),
        "{text}"
    );
    let csv = hall.cli(&["report", "--table", "bad_ratings", "--day", &today]);
    assert!(
        csv.contains("办事效率低") && csv.contains("dissatisfied"),
        "{csv}"
    );

    // A restart counts nothing twice; figures rebuilt from the stored events are the same.
    drop(d);
    let d = hall.start();
    let after = period(&d.url, &format!("day={today}"), &sup_again(&d.url));
    assert_eq!(steady(&after["hall"]), steady(h));
    drop(d);
    {
        let db =
            rusqlite::Connection::open(hall.dir.path().join("data").join("hallq.db")).expect("db");
        db.execute_batch(
            "DELETE FROM figures; DELETE FROM figure_reasons; DELETE FROM figure_open; \
             DELETE FROM meta WHERE key = 'figures_built';",
        )
        .expect("forget the figures");
    }
    let d = hall.start();
    let rebuilt = period(&d.url, &format!("day={today}"), &sup_again(&d.url));
    assert_eq!(steady(&rebuilt["hall"]), steady(h));
    assert_eq!(steady(&rebuilt["staff"][0]), steady(staff));
    assert_eq!(rebuilt["bad_ratings"], day["bad_ratings"]);
}

fn sup_again(url: &str) -> String {
    sign_in(url, "J001", "246801", None)
}
