//! The supervision page's period figures (统计分析) and the monthly report (月通报) in
//! headless Chromium, against the real daemon over a generated month of history
//! (`hallq gen-history` for the hall's own configuration) and a few live actions today:
//! the picker loads a month, an ISO week, a day and a range and shows the API's
//! figures; the charts' pixels follow the data (bar heights per hour, the five rating
//! colours in proportion, bar lengths per member of staff); the staff table's CSV has a
//! line per member of staff; the report prints to an A4 PDF whose pages and text
//! (`pdftotext`, Debian's poppler-utils) hold the hall, the period, the staff and the
//! month's total. Screenshots for the README when `HALLQ_SCREENS=1`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use hallq_tests::webdriver::{Browser, Driver, rgb};
use hallq_tests::{Hall, client, hallq_bin, send, sign_in};
use serde_json::{Value, json};

const TEST: &str = "the_period_views_charts_csv_and_monthly_report_show_the_stored_history";
/// The chart colours of `firmware/web/charts.js`.
const ISSUED: &str = "#3b6fb6";
const WAIT: &str = "#e8590c";
const SERVED: &str = "#2f8f83";
const LEVELS: [(&str, &str); 5] = [
    ("very_satisfied", "#1a7f37"),
    ("satisfied", "#74b816"),
    ("basically_satisfied", "#f2b705"),
    ("dissatisfied", "#f76707"),
    ("very_dissatisfied", "#c92a2a"),
];

fn get(url: &str, path: &str, token: &str) -> Value {
    let (s, b) = send(
        client()
            .get(format!("{url}{path}"))
            .header("Authorization", token)
            .call(),
    );
    assert_eq!(s, 200, "GET {path}: {b}");
    b
}

fn post(url: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = client().post(format!("{url}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let (s, b) = send(req.send_json(body));
    assert!(s == 200 || s == 201, "POST {path}: {s} {b}");
    b
}

/// The page's m:ss (h:mm:ss past an hour), as `HQ.duration`.
fn dur(v: &Value) -> String {
    let Some(secs) = v.as_f64() else {
        return "—".into();
    };
    let secs = secs.max(0.0).floor() as u64;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The page's h:mm for long spans.
fn hm(v: &Value) -> String {
    let Some(secs) = v.as_f64() else {
        return "—".into();
    };
    let m = (secs / 60.0).round() as u64;
    format!("{}:{:02}", m / 60, m % 60)
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Chooses the period on the page (`kind` day, week, month or range), loads it and
/// waits until the page shows it.
fn pick(page: &Browser, kind: &str, values: &[(&str, &str)], query: &str) {
    page.click(&format!("#pk-{kind}")).unwrap();
    for (id, v) in values {
        page.js(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('change'));",
            json!([id, v]),
        )
        .unwrap();
    }
    page.click("#p-load").unwrap();
    page.wait_for(&format!("the period {query}"), 30, |b| {
        b.js("return document.body.dataset.period || ''", json!([]))
            .ok()
            == Some(json!(query))
    })
    .unwrap();
}

/// What the page shows as the hall's figure `key`.
fn figure(page: &Browser, key: &str) -> String {
    page.text(&format!("#p-figures .figure[data-figure='{key}'] .value"))
}

/// The page's hall figures and one staff row equal the API's answer for `query`.
fn shows_the_api(page: &Browser, d: &Value, staff_key: Option<&str>) {
    let f = &d["hall"];
    for k in [
        "issued",
        "served",
        "no_shows",
        "transfers",
        "over_limit",
        "rated",
        "bad",
        "pauses",
    ] {
        assert_eq!(figure(page, k), f[k].to_string(), "hall figure {k}");
    }
    for k in [
        "avg_wait_secs",
        "max_wait_secs",
        "avg_service_secs",
        "max_service_secs",
    ] {
        assert_eq!(figure(page, k), dur(&f[k]), "hall figure {k}");
    }
    assert_eq!(figure(page, "satisfaction"), pct(&f["satisfaction"]));
    assert_eq!(
        figure(page, "warnings"),
        format!("{}/{}", n(&f["warnings_handled"]), n(&f["warnings"]))
    );
    let Some(key) = staff_key else { return };
    let row = d["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .expect("the staff member in the API's answer");
    let cell = |col: &str| {
        page.text(&format!(
            "#p-t-staff tr[data-key='{key}'] td[data-col='{col}']"
        ))
    };
    assert_eq!(cell("name"), row["name"].as_str().unwrap_or(""));
    assert_eq!(cell("called"), row["called"].to_string());
    assert_eq!(cell("served"), row["served"].to_string());
    assert_eq!(cell("avg_wait"), dur(&row["avg_wait_secs"]));
    assert_eq!(cell("avg_service"), dur(&row["avg_service_secs"]));
    assert_eq!(cell("signed_in"), hm(&row["signed_in_secs"]));
    assert_eq!(cell("satisfaction"), pct(&row["satisfaction"]));
    assert_eq!(cell("bad"), row["bad"].to_string());
    assert_eq!(
        cell("warnings"),
        format!("{}/{}", n(&row["warnings_handled"]), n(&row["warnings"]))
    );
}

/// The boxes of the chart's marks matching `marks`, relative to the chart: (data key,
/// x, y, width, height) in CSS pixels (the screenshots are at scale 1).
fn marks(page: &Browser, chart: &str, marks: &str, key: &str) -> Vec<(String, f64, f64, f64, f64)> {
    let v = page
        .js(
            "const svg = document.querySelector(arguments[0]); const b = svg.getBoundingClientRect();
             return [...svg.querySelectorAll(arguments[1])].map((r) => { const q = r.getBoundingClientRect();
               return [r.getAttribute(arguments[2]), q.left - b.left, q.top - b.top, q.width, q.height]; });",
            json!([chart, marks, key]),
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m[0].as_str().unwrap_or("").to_string(),
                m[1].as_f64().unwrap(),
                m[2].as_f64().unwrap(),
                m[3].as_f64().unwrap(),
                m[4].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Per hour: the bars' heights, measured in pixels of the bar colour, follow the
/// tickets taken, and the wait line is drawn.
fn hour_bars_follow_the_data(page: &Browser, d: &Value) {
    let css = "#p-charts svg[data-chart=hours]";
    let pic = page.element_picture(css).unwrap();
    let colour = rgb(ISSUED);
    let issued: BTreeMap<String, i64> = d["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["key"].as_str().unwrap().to_string(), n(&h["issued"])))
        .collect();
    let bars = marks(page, css, "rect[data-hour]", "data-hour");
    assert_eq!(
        bars.len(),
        issued.values().filter(|v| **v > 0).count(),
        "one bar per hour with tickets"
    );
    // Measured in the bar's left part, clear of the wait line's point at its centre.
    let mut heights = BTreeMap::new();
    for (hour, x, _, w, _) in &bars {
        let mut best = 0;
        for col in (x + 2.0) as usize..(x + w * 0.3).max(x + 3.0) as usize {
            let ys: Vec<usize> = (0..pic.height)
                .filter(|&y| pic.is(col, y, colour))
                .collect();
            if let (Some(lo), Some(hi)) = (ys.first(), ys.last()) {
                best = best.max(hi - lo + 1);
            }
        }
        heights.insert(hour.clone(), best as f64);
    }
    let (top_hour, top) = issued.iter().max_by_key(|(_, v)| **v).unwrap();
    let tallest = heights[top_hour];
    assert!(
        tallest > 40.0,
        "the busiest hour's bar is drawn: {heights:?}"
    );
    for (hour, h) in &heights {
        assert!(
            *h <= tallest + 1.0,
            "hour {hour} drawn taller than the busiest {top_hour}: {heights:?}"
        );
        let want = issued[hour] as f64 / *top as f64;
        let got = h / tallest;
        assert!(
            (want - got).abs() <= 0.06 + 4.0 / tallest,
            "hour {hour}: {} tickets of {top} should be {want:.2} of the tallest bar, drawn {got:.2} ({heights:?})",
            issued[hour]
        );
    }
    assert!(
        pic.count(rgb(WAIT)) > 20,
        "the average wait's line is drawn"
    );
}

/// Ratings per day: each level's colour covers its share of the stacked bars, and a
/// level without ratings has no pixel.
fn rating_colours_follow_the_data(page: &Browser, d: &Value) {
    let pic = page
        .element_picture("#p-charts svg[data-chart=ratings]")
        .unwrap();
    let mut counts = BTreeMap::new();
    for day in d["days"].as_array().unwrap() {
        for (level, _) in LEVELS {
            *counts.entry(level).or_insert(0) += n(&day["ratings"][level]);
        }
    }
    let total: i64 = counts.values().sum();
    assert!(total > 0, "the month has ratings: {counts:?}");
    let pixels: BTreeMap<&str, usize> = LEVELS
        .iter()
        .map(|(l, c)| (*l, pic.count(rgb(c))))
        .collect();
    let all: usize = pixels.values().sum();
    for (level, _) in LEVELS {
        if counts[level] == 0 {
            assert_eq!(pixels[level], 0, "{level} has no ratings and no pixels");
            continue;
        }
        assert!(
            pixels[level] > 0,
            "{level}: {} ratings and no pixel drawn",
            counts[level]
        );
        let want = counts[level] as f64 / total as f64;
        let got = pixels[level] as f64 / all as f64;
        assert!(
            (want - got).abs() <= 0.04,
            "{level}: {want:.3} of the ratings, {got:.3} of the coloured area ({counts:?} vs {pixels:?})"
        );
    }
    let kinds = counts.values().filter(|v| **v > 0).count();
    assert!(
        kinds >= 4,
        "generated history has ratings of (nearly) every level: {counts:?}"
    );
}

/// Served per member of staff: bar lengths in pixels follow the served counts.
fn staff_bars_follow_the_data(page: &Browser, d: &Value) {
    let css = "#p-charts svg[data-chart=staff]";
    let pic = page.element_picture(css).unwrap();
    let served: BTreeMap<String, i64> = d["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), n(&s["served"])))
        .filter(|(_, v)| *v > 0)
        .collect();
    let colour = rgb(SERVED);
    let bars = marks(page, css, "rect[data-staff]", "data-staff");
    assert_eq!(
        bars.len(),
        served.len(),
        "one bar per member of staff who served"
    );
    let mut lengths = BTreeMap::new();
    for (key, _, y, _, h) in &bars {
        let row = (y + h / 2.0) as usize;
        let len = (0..pic.width).filter(|&x| pic.is(x, row, colour)).count();
        lengths.insert(key.clone(), len as f64);
    }
    let (top_key, top) = served.iter().max_by_key(|(_, v)| **v).unwrap();
    let longest = lengths[top_key];
    assert!(
        longest > 100.0,
        "the busiest member of staff's bar is drawn: {lengths:?}"
    );
    for (a, la) in &lengths {
        for (b, lb) in &lengths {
            if served[a] > served[b] + served[b] / 20 + 1 {
                assert!(
                    la > lb,
                    "{a} served more than {b}: the bar must be longer ({lengths:?})"
                );
            }
        }
        let want = served[a] as f64 / *top as f64;
        assert!(
            (want - la / longest).abs() <= 0.03,
            "{a}: {} of {top} served, bar {la} px of {longest} ({lengths:?})",
            served[a]
        );
    }
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
}

/// `pdftotext -layout` of pages `first`..=`last` (all pages: None).
fn pdf_text(pdf: &Path, pages: Option<(u32, u32)>) -> String {
    let mut cmd = Command::new("pdftotext");
    cmd.arg("-layout");
    if let Some((a, b)) = pages {
        cmd.args(["-f", &a.to_string(), "-l", &b.to_string()]);
    }
    let out = cmd.arg(pdf).arg("-").output().expect("pdftotext runs");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pdf_pages(pdf: &Path) -> u32 {
    let out = Command::new("pdfinfo")
        .arg(pdf)
        .output()
        .expect("pdfinfo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("(A4)"), "an A4 PDF: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("pdfinfo names the page count")
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&hallq_tests::screens_dir().join(name))
        .expect("screenshot");
}

/// The ISO week (YYYY-Www) of a day.
fn iso_week(day: &str) -> String {
    use chrono::Datelike;
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

// Over 100 lines: one hall, one daemon and one browser session walk the whole feature
// in order (history → picker → charts → CSV → report), which is what keeps it fast.
#[test]
fn the_period_views_charts_csv_and_monthly_report_show_the_stored_history() {
    if !tool("pdftotext") || !tool("pdfinfo") {
        hallq_tests::missing_prerequisite(TEST, "pdftotext and pdfinfo (Debian: poppler-utils)");
        return;
    }
    let hall = Hall::new();
    let out = Command::new(hallq_bin())
        .args(["gen-history", "--config"])
        .arg(&hall.config)
        .args(["--days", "20", "--per-day", "150"])
        .output()
        .expect("hallq gen-history runs");
    assert!(
        out.status.success(),
        "gen-history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // gen-history's staff member at window N is H<N>; accounts give them names.
    let names = [
        "张三", "李四", "王芳", "赵敏", "刘洋", "陈静", "杨帆", "黄磊", "周婷",
    ];
    for (i, name) in names.iter().enumerate() {
        let w = (i + 1).to_string();
        hall.add_staff_named(&format!("H{w}"), name, "135791", &["--window", &w]);
    }
    hall.add_staff_named("J901", "周监察", "246801", &["--role", "supervisor"]);
    hall.add_staff_named("T901", "钱窗口", "135790", &["--window", "1"]);
    let d = hall.start();
    let url = d.url.clone();

    // A few live actions today: tickets, a call, a finish and a bad rating with its reason.
    let sup = sign_in(&url, "J901", "246801", None);
    let clerk = sign_in(&url, "T901", "135790", Some(1));
    for _ in 0..3 {
        post(&url, "/api/v1/tickets", None, json!({ "service": "SB" }));
    }
    post(&url, "/api/v1/windows/1/call-next", Some(&clerk), json!({}));
    post(&url, "/api/v1/windows/1/start", Some(&clerk), json!({}));
    let done = post(&url, "/api/v1/windows/1/finish", Some(&clerk), json!({}));
    let ticket = done["events"][0]["ticket"].clone();
    post(
        &url,
        "/api/v1/ratings",
        None,
        json!({ "ticket": ticket, "level": "不满意", "reasons": ["办事效率低"] }),
    );

    // The month of the generated history: the one with the most tickets in the last 60 days.
    let today = get(&url, "/api/v1/supervision", &sup)["day"]
        .as_str()
        .unwrap()
        .to_string();
    let from = (chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").unwrap()
        - chrono::Duration::days(60))
    .to_string();
    let span = get(
        &url,
        &format!("/api/v1/supervision/period?from={from}&to={today}"),
        &sup,
    );
    let mut per_month: BTreeMap<String, i64> = BTreeMap::new();
    for day in span["days"].as_array().unwrap() {
        if day["key"].as_str().unwrap() < today.as_str() {
            *per_month
                .entry(day["key"].as_str().unwrap()[..7].to_string())
                .or_default() += n(&day["issued"]);
        }
    }
    let month = per_month
        .iter()
        .max_by_key(|(_, v)| **v)
        .map(|(m, _)| m.clone())
        .expect("generated history before today");
    let month_q = format!("month={month}");
    let m = get(&url, &format!("/api/v1/supervision/period?{month_q}"), &sup);
    assert!(
        n(&m["hall"]["served"]) > 100,
        "the month has history: {}",
        m["hall"]
    );
    let staff = m["staff"].as_array().unwrap();
    assert!(staff.len() >= 3, "several members of staff: {staff:?}");
    let busiest = staff
        .iter()
        .max_by_key(|s| n(&s["served"]))
        .unwrap()
        .clone();
    let busiest_key = busiest["key"].as_str().unwrap().to_string();
    let days: Vec<String> = m["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect();

    let driver = Driver::start().unwrap();
    let page = driver.browser(1600, 1100).unwrap();
    page.go(&format!("{url}/supervision")).unwrap();
    page.wait_for("the sign-in form", 20, |b| b.visible("#login-staff"))
        .unwrap();
    page.type_into("#login-staff", "J901").unwrap();
    page.type_into("#login-pin", "246801").unwrap();
    page.click("#login-submit").unwrap();
    page.wait_for("the dashboard and its tabs", 20, |b| {
        b.visible("#dash") && b.visible("#tab-period")
    })
    .unwrap();
    page.click("#tab-period").unwrap();
    // The default is the current month.
    let this_month = format!("month={}", &today[..7]);
    page.wait_for("the current month by default", 30, |b| {
        b.js("return document.body.dataset.period || ''", json!([]))
            .ok()
            == Some(json!(this_month))
    })
    .unwrap();

    // Month: the figures and the busiest member of staff's row are the API's.
    pick(&page, "month", &[("p-month", &month)], &month_q);
    shows_the_api(&page, &m, Some(&busiest_key));
    assert!(page.text("#p-status").contains(m["from"].as_str().unwrap()));
    let windows = m["windows"].as_array().unwrap().len() as i64;
    let rows = page
        .js(
            "return document.querySelectorAll('#p-t-windows tbody tr[data-key]').length",
            json!([]),
        )
        .unwrap();
    assert_eq!(n(&rows), windows, "a row per window");

    // The charts, pixel by pixel.
    hour_bars_follow_the_data(&page, &m);
    rating_colours_follow_the_data(&page, &m);
    staff_bars_follow_the_data(&page, &m);

    // The staff table's CSV: the header and a line per member of staff.
    page.click("#csv-p-staff").unwrap();
    page.wait_for("the staff CSV", 20, |b| {
        b.js("return document.body.dataset.lastCsvName || ''", json!([]))
            .ok()
            .and_then(|v| v.as_str().map(|s| s.ends_with("-staff.csv")))
            .unwrap_or(false)
    })
    .unwrap();
    let csv = page
        .js("return document.body.dataset.lastCsv", json!([]))
        .unwrap();
    let lines: Vec<&str> = csv
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), staff.len() + 1, "{csv}");
    assert!(lines.iter().any(|l| l.contains(&busiest_key)), "{csv}");
    page.js("window.scrollTo(0, 0)", json!([])).unwrap();
    shot(&page, "web-supervision-period.png");

    // An ISO week, a day and a range of the month each load and show the API's figures.
    let mid = &days[days.len() / 2];
    let week = iso_week(mid);
    pick(&page, "week", &[("p-week", &week)], &format!("week={week}"));
    shows_the_api(
        &page,
        &get(
            &url,
            &format!("/api/v1/supervision/period?week={week}"),
            &sup,
        ),
        None,
    );
    pick(&page, "day", &[("p-day", mid)], &format!("day={mid}"));
    shows_the_api(
        &page,
        &get(&url, &format!("/api/v1/supervision/period?day={mid}"), &sup),
        None,
    );
    let (first, last) = (&days[1], &days[days.len() - 2]);
    let range_q = format!("from={first}&to={last}");
    pick(
        &page,
        "range",
        &[("p-from", first), ("p-to", last)],
        &range_q,
    );
    let r = get(&url, &format!("/api/v1/supervision/period?{range_q}"), &sup);
    shows_the_api(&page, &r, Some(&busiest_key));
    assert!(
        n(&r["hall"]["served"]) < n(&m["hall"]["served"]),
        "the range is part of the month"
    );
    // Today: the live bad rating is listed with its reason.
    pick(&page, "day", &[("p-day", &today)], &format!("day={today}"));
    let bad = page.text("#p-t-bad_ratings");
    assert!(
        bad.contains("不满意") && bad.contains("办事效率低"),
        "today's bad rating: {bad}"
    );

    // The monthly report, from the period section's link: A4 pages, the text it must hold.
    pick(&page, "month", &[("p-month", &month)], &month_q);
    page.click("#p-report").unwrap();
    page.wait_for("the report", 30, |b| {
        b.js("return document.body.dataset.ready || ''", json!([]))
            .ok()
            == Some(json!("true"))
    })
    .unwrap();
    assert!(page.visible("#print"), "the print button on screen");
    shot(&page, "web-supervision-report.png");
    let pdf = page.print_a4().unwrap();
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let pages = pdf_pages(&file);
    let bad_rows = m["bad_ratings"].as_array().unwrap();
    assert!(
        pages >= 2 && pages as usize <= 4 + bad_rows.len() / 20,
        "{pages} pages for {} bad ratings",
        bad_rows.len()
    );
    let text = pdf_text(&file, None);
    let hall_name = m["hall_name"].as_str().unwrap();
    let (y, mo) = (&month[..4], month[5..].trim_start_matches('0'));
    let first_page = pdf_text(&file, Some((1, 1)));
    assert!(
        first_page.contains(hall_name) && first_page.contains(&format!("{y}年{mo}月")),
        "the title on page 1: {first_page}"
    );
    for needle in [
        m["from"].as_str().unwrap(),
        m["to"].as_str().unwrap(),
        busiest["name"].as_str().unwrap(),
        &format!("办结 {} 件", m["hall"]["served"]),
    ] {
        assert!(
            text.contains(needle),
            "the report holds {needle:?}:\n{text}"
        );
    }
    assert!(
        pdf_text(&file, Some((pages, pages))).contains("审核人"),
        "the signature line on the last page"
    );
    // A page that lists bad ratings repeats the table's header.
    for p in 1..=pages {
        let t = pdf_text(&file, Some((p, p)));
        if bad_rows
            .iter()
            .any(|b| t.contains(b["number"].as_str().unwrap_or("?")))
        {
            assert!(
                t.contains("号码"),
                "page {p} lists bad ratings without the header:\n{t}"
            );
        }
    }
    // The print button is not printed.
    assert!(!text.contains("返回电子监察"), "the toolbar is not printed");
}
