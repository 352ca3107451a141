//! The local API over real HTTP against the real binary.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use hallq_tests::{Hall, client, send};
use serde_json::json;

#[test]
fn a_citizen_takes_a_ticket_and_a_retry_returns_the_same_one() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let (s, services) = send(c.get(format!("{}/api/v1/services", d.url)).call());
    assert_eq!(s, 200);
    assert!(
        services["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "SB" && s["name"]["zh-CN"] == "社会保障")
    );
    let (s, first) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", "k-1")
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["ticket"]["number"], "A000001");
    let (s, again) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", "k-1")
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 200);
    assert_eq!(again["ticket"]["id"], first["ticket"]["id"]);
    assert_eq!(again["replayed"], true);
    let (_, second) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", "k-2")
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(second["ticket"]["number"], "A000002");
    assert_eq!(second["ticket"]["ahead"], 1);
    let id = second["ticket"]["id"].as_u64().unwrap();
    let (s, status) = send(c.get(format!("{}/api/v1/tickets/{id}", d.url)).call());
    assert_eq!(
        (s, status["ticket"]["state"].as_str()),
        (200, Some("waiting"))
    );
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let post = |body: serde_json::Value| {
        send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Accept-Language", "en")
                .send_json(body),
        )
    };
    let (s, b) = post(json!({}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("service")),
        "{b}"
    );
    let (s, b) = post(json!({"service": 5}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("service")),
        "{b}"
    );
    let (s, b) = post(json!({"service": "NOPE"}));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("unknown_service")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("NOPE"));
    let (s, b) = post(json!({"service": "SB", "class": "vip"}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("class")),
        "{b}"
    );
    let (s, b) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Content-Type", "application/json")
            .send("{not json"),
    );
    assert_eq!(s, 422, "{b}");
    let (s, _) = send(c.get(format!("{}/api/v1/tickets/abc", d.url)).call());
    assert_eq!(s, 422);
}

#[test]
fn staff_sign_in_call_and_rate_through_the_api_with_a_live_stream() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    // The stream is open before anything happens and must see the call.
    let stream = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::Write;
    (&stream)
        .write_all(
            b"GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        )
        .unwrap();
    // Wait for the headers: from then on the stream misses nothing.
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream closed before its headers"
        );
    }
    let (_, t) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    let ticket = t["ticket"]["id"].as_u64().unwrap();

    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "000000", "window": 1})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 2})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("wrong_window"))
    );
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().unwrap());

    let (s, _) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", d.url))
            .send_json(json!({})),
    );
    assert_eq!(s, 401, "no token, no call");
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/2/call-next", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("wrong_window"))
    );
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["events"][0]["type"], "ticket_called");
    assert_eq!(b["events"][0]["staff"], "S001");
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", d.url))
            .header("Authorization", &token)
            .header("Accept-Language", "en")
            .send_json(json!({})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("current_ticket_pending")),
        "{b}"
    );
    send(
        c.post(format!("{}/api/v1/windows/1/start", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    let (s, _) = send(
        c.post(format!("{}/api/v1/windows/1/finish", d.url))
            .header("Authorization", &token)
            .send_json(json!({"case_no": "QS2026112300017"})),
    );
    assert_eq!(s, 200);

    let (s, b) = send(
        c.post(format!("{}/api/v1/ratings", d.url))
            .send_json(json!({"ticket": ticket, "level": "不满意"})),
    );
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("reasons")),
        "{b}"
    );
    let (s, b) = send(c.post(format!("{}/api/v1/ratings", d.url)).send_json(
        json!({"ticket": ticket, "level": "不满意", "reasons": ["办事效率低"], "channel": "pad-1"}),
    ));
    assert_eq!(s, 201, "{b}");
    let rating = &b["events"][0]["payload"]["rating"];
    assert_eq!(
        (
            rating["level"].as_str(),
            rating["case_no"].as_str(),
            rating["staff"].as_str()
        ),
        (Some("不满意"), Some("QS2026112300017"), Some("S001"))
    );

    let mut seen = String::new();
    while !seen.contains("event: rating_recorded") {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    for kind in [
        "ticket_issued",
        "staff_signed_in",
        "ticket_called",
        "ticket_finished",
        "rating_recorded",
    ] {
        assert!(
            seen.contains(&format!("event: {kind}")),
            "stream lacks {kind}:\n{seen}"
        );
    }

    let csv = hall.cli(&["report", "--format", "csv"]);
    assert!(
        csv.lines().any(|l| l.starts_with("window,1,1,1,0,")),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.starts_with("service,SB,1,1,0,")),
        "{csv}"
    );
}

#[test]
fn repeated_wrong_pins_lock_the_account() {
    let hall = Hall::new();
    hall.add_staff("S002", "864200", &["--window", "2:B"]);
    let d = hall.start();
    let c = client();
    let login = |pin: &str| {
        send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": "S002", "pin": pin, "window": 2})),
        )
    };
    for _ in 0..4 {
        assert_eq!(login("111111").0, 401);
    }
    assert_eq!(login("111111").0, 423);
    let (s, b) = login("864200");
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (423, Some("account_locked")),
        "the right PIN is refused while locked"
    );
}

#[test]
fn a_restart_keeps_numbering_and_the_queue() {
    let hall = Hall::new();
    let c = client();
    let first = {
        let d = hall.start();
        for i in 0..3 {
            send(
                c.post(format!("{}/api/v1/tickets", d.url))
                    .header("Idempotency-Key", format!("r-{i}"))
                    .send_json(json!({"service": "BDC"})),
            );
        }
        send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", "r-0")
                .send_json(json!({"service": "BDC"})),
        )
        .1
    };
    let d = hall.start();
    let (_, again) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", "r-0")
            .send_json(json!({"service": "BDC"})),
    );
    assert_eq!(again["ticket"]["id"], first["ticket"]["id"]);
    let (_, next) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "BDC"})),
    );
    assert_eq!(next["ticket"]["number"], "C000004");
    assert_eq!(next["ticket"]["ahead"], 3);
}

#[test]
fn metrics_show_the_queue_and_request_latencies() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    for key in ["m-1", "m-2"] {
        let (s, _) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201);
    }
    let mut resp = c.get(format!("{}/metrics", d.url)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.body_mut().read_to_string().unwrap();
    assert!(text.contains("hallq_waiting{service=\"SB\"} 2"), "{text}");
    assert!(text.contains("hallq_issued_today{service=\"SB\"} 2"));
    assert!(text.contains(
        "hallq_http_request_duration_seconds_count{route=\"/api/v1/tickets\",method=\"POST\",status=\"201\"} 2"
    ));
    // Counters follow the committed events (through the broadcast, so allow a moment).
    let mut counted = false;
    for _ in 0..50 {
        let text = c
            .get(format!("{}/metrics", d.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        if text.contains("hallq_events_total{type=\"ticket_issued\"} 2") {
            counted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(counted, "ticket_issued events were not counted");
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[test]
fn a_backup_taken_while_running_holds_every_ticket() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    for key in ["b-1", "b-2", "b-3"] {
        let (s, _) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201);
    }
    let to = hall.dir.path().join("backup.db");
    let out = hall.cli(&["backup", "--to", to.to_str().unwrap()]);
    assert!(out.contains("backed up"), "{out}");
    let copy = rusqlite::Connection::open(&to).unwrap();
    let n: i64 = copy
        .query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    // A second backup to the same file is refused rather than overwriting it.
    let refused = std::process::Command::new(hallq_tests::hallq_bin())
        .args(["backup", "--to", to.to_str().unwrap(), "--config"])
        .arg(&hall.config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn the_overview_says_whether_tickets_are_issued_and_why_not_in_three_languages() {
    let c = client();
    let open = Hall::new();
    let d = open.start();
    let (s, o) = send(c.get(format!("{}/api/v1/overview", d.url)).call());
    assert_eq!(s, 200);
    assert_eq!(o["issuing"], json!({"open": true, "reason": null}));
    drop(d);

    let closed = Hall::closed_today();
    let d = closed.start();
    let (_, o) = send(c.get(format!("{}/api/v1/overview", d.url)).call());
    assert_eq!(o["issuing"]["open"], false, "{o}");
    assert_eq!(
        o["issuing"]["reason"]["zh-CN"],
        "今天是法定节假日，大厅不办理业务。"
    );
    assert_eq!(
        o["issuing"]["reason"]["en"],
        "The hall is closed today for a public holiday."
    );
    assert!(
        o["issuing"]["reason"]["zh-TW"]
            .as_str()
            .is_some_and(|r| r.contains("假日"))
    );
    // What the overview says is what an issue gets, word for word.
    let (s, refused) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Idempotency-Key", "closed-1")
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "closed");
    assert_eq!(refused["error"]["message"], o["issuing"]["reason"]["zh-CN"]);
}

/// Signs S001 in at window 1, serves one SB ticket there and returns (ticket id, token);
/// `before_finish` runs while the ticket is still only being served.
fn serve_one_at_window_1(url: &str, before_finish: impl FnOnce(u64, &str)) -> (u64, String) {
    let c = client();
    let (s, t) = send(
        c.post(format!("{url}/api/v1/tickets"))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let ticket = t["ticket"]["id"].as_u64().unwrap();
    let (s, b) = send(
        c.post(format!("{url}/api/v1/sessions"))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().unwrap());
    for action in ["call-next", "start"] {
        let (s, b) = send(
            c.post(format!("{url}/api/v1/windows/1/{action}"))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
    }
    before_finish(ticket, &token);
    let (s, b) = send(
        c.post(format!("{url}/api/v1/windows/1/finish"))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "finish: {b}");
    (ticket, token)
}

#[test]
fn a_rating_comes_only_from_a_kiosk_or_the_pad_of_the_window_that_served() {
    let hall =
        Hall::with_config("[[server.rating_pads]]\nwindow = 2\nkey = \"pad-of-window-2-0123\"\n");
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    let rate = |headers: &[(&str, &str)], body: serde_json::Value| {
        let mut req = c.post(format!("{}/api/v1/ratings", d.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(req.send_json(body))
    };
    let code =
        |r: &(u16, serde_json::Value)| (r.0, r.1["error"]["code"].as_str().map(String::from));
    let (ticket, token) = serve_one_at_window_1(&d.url, |ticket, _| {
        let r = rate(&[], json!({"ticket": ticket, "level": "满意"}));
        assert_eq!(code(&r), (409, Some("not_finished".into())), "{}", r.1);
    });
    let good = json!({"ticket": ticket, "level": "非常满意"});

    // The clerk who served cannot rate their own service, not even from this machine.
    let r = rate(&[("Authorization", token.as_str())], good.clone());
    assert_eq!(code(&r), (403, Some("staff_cannot_rate".into())), "{}", r.1);
    assert!(r.1["error"]["message"].as_str().unwrap().contains("staff"));
    let r = rate(
        &[("Authorization", token.as_str()), ("X-Rating-Pad", "1")],
        good.clone(),
    );
    assert_eq!(
        r.0, 403,
        "a staff token is refused even beside a pad header"
    );

    // Window 2's pad, known by its key, cannot rate a citizen served at window 1; nor
    // can its key speak for another window's pad.
    let r = rate(&[("X-Kiosk-Key", "pad-of-window-2-0123")], good.clone());
    assert_eq!(code(&r), (409, Some("not_finished_here".into())), "{}", r.1);
    let r = rate(
        &[
            ("X-Kiosk-Key", "pad-of-window-2-0123"),
            ("X-Rating-Pad", "1"),
        ],
        good.clone(),
    );
    assert_eq!(code(&r), (403, Some("wrong_pad".into())), "{}", r.1);
    let r = rate(&[("X-Rating-Pad", "2")], good.clone());
    assert_eq!(code(&r), (409, Some("not_finished_here".into())), "{}", r.1);
    let r = rate(&[("X-Rating-Pad", "99")], good.clone());
    assert_eq!(
        (r.0, r.1["error"]["field"].as_str()),
        (422, Some("X-Rating-Pad")),
        "{}",
        r.1
    );

    // A kiosk that claims to be a window pad in the body is recorded as the kiosk.
    let r = rate(
        &[],
        json!({"ticket": ticket, "level": "满意", "channel": "window-pad-1"}),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["events"][0]["payload"]["rating"]["channel"], "kiosk");
    // Nobody but the one who rated replaces it within the replace window: not even
    // window 1's own pad, whatever its body says; the kiosk itself may.
    let r = rate(
        &[("X-Rating-Pad", "1")],
        json!({"ticket": ticket, "level": "非常满意", "channel": "kiosk"}),
    );
    assert_eq!(code(&r), (409, Some("already_rated".into())), "{}", r.1);
    let r = rate(&[], json!({"ticket": ticket, "level": "非常满意"}));
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["events"][0]["payload"]["replaced"], true, "{}", r.1);
    let stored = hall.events_of("rating_recorded");
    let channels: Vec<_> = stored
        .iter()
        .map(|e| e["rating"]["channel"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(channels, ["kiosk", "kiosk"]);
    assert_eq!(stored[1]["rating"]["window"], 1);
}

#[test]
fn a_rating_after_the_rating_window_is_refused() {
    let hall = Hall::new();
    let text = std::fs::read_to_string(&hall.config).unwrap();
    assert!(
        text.contains("accept_within_minutes = 10"),
        "the example's rating window"
    );
    // 0 minutes: refused from the first whole second after finish, the same check as
    // ten minutes without waiting ten minutes.
    std::fs::write(
        &hall.config,
        text.replace("accept_within_minutes = 10", "accept_within_minutes = 0"),
    )
    .unwrap();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let (ticket, _) = serve_one_at_window_1(&d.url, |_, _| {});
    std::thread::sleep(Duration::from_millis(1100));
    let (s, b) = send(
        client()
            .post(format!("{}/api/v1/ratings", d.url))
            .header("X-Rating-Pad", "1")
            .header("Accept-Language", "en")
            .send_json(json!({"ticket": ticket, "level": "满意"})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("rating_expired")),
        "{b}"
    );
    assert!(hall.events_of("rating_recorded").is_empty());
}

/// Runs `hallq staff ARGS --config …` with `stdin`; returns (success, stdout + stderr).
fn staff_cli(hall: &Hall, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(hallq_tests::hallq_bin())
        .arg("staff")
        .args(args)
        .arg("--config")
        .arg(&hall.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hallq staff");
    // A command that answers without reading stdin (`--help`) may exit before the write:
    // a broken pipe then is no failure, the exit status and output tell.
    if let Some(mut pipe) = child.stdin.take() {
        match writeln!(pipe, "{stdin}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
            _ => {}
        }
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn staff_accounts_are_disabled_enabled_reset_unlocked_changed_and_removed_from_the_cli() {
    let hall = Hall::new();
    let (ok, help) = staff_cli(&hall, &["--help"], "");
    assert!(ok, "{help}");
    for verb in [
        "add",
        "list",
        "disable",
        "enable",
        "reset-pin",
        "unlock",
        "set",
        "remove",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(verb)),
            "`hallq staff --help` lacks {verb}:\n{help}"
        );
    }
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    let login = |pin: &str, window: u32| {
        let (s, b) = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": "S001", "pin": pin, "window": window})),
        );
        (s, b["error"]["code"].as_str().map(String::from))
    };
    let (s, _) = login("135790", 1);
    assert_eq!(s, 201);

    assert!(staff_cli(&hall, &["disable", "--id", "S001"], "").0);
    assert_eq!(login("135790", 1), (403, Some("account_disabled".into())));
    // The running daemon signs the disabled account out of its window on its own, so
    // the window's LED shows it unstaffed.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while hall.events_of("staff_signed_out").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = hall.events_of("staff_signed_out");
    assert_eq!(
        out.len(),
        1,
        "disabled from the CLI, signed out of window 1: {out:?}"
    );
    assert_eq!(
        (out[0]["window"].as_u64(), out[0]["reason"].as_str()),
        (Some(1), Some("account_changed"))
    );
    assert!(hall.cli(&["staff", "list"]).contains("disabled"));
    assert!(staff_cli(&hall, &["enable", "--id", "S001"], "").0);
    assert_eq!(login("135790", 1).0, 201);

    // The new PIN comes on standard input and is never echoed.
    let (ok, out) = staff_cli(&hall, &["reset-pin", "--id", "S001"], "97531086");
    assert!(ok && !out.contains("97531086"), "{out}");
    assert_eq!(login("135790", 1).0, 401);
    assert_eq!(login("97531086", 1).0, 201);

    for _ in 0..5 {
        login("000000", 1); // the fifth wrong PIN locks ([auth] max_failures = 5)
    }
    assert_eq!(login("97531086", 1), (423, Some("account_locked".into())));
    assert!(staff_cli(&hall, &["unlock", "--id", "S001"], "").0);
    assert_eq!(login("97531086", 1).0, 201);

    assert!(staff_cli(&hall, &["set", "--id", "S001", "--window", "2:B"], "").0);
    assert_eq!(login("97531086", 1), (403, Some("wrong_window".into())));
    assert_eq!(login("97531086", 2).0, 201);

    assert!(staff_cli(&hall, &["remove", "--id", "S001"], "").0);
    assert_eq!(
        login("97531086", 2),
        (401, Some("invalid_credentials".into()))
    );
    assert!(!hall.cli(&["staff", "list"]).contains("S001"));
    let (ok, out) = staff_cli(
        &hall,
        &["add", "--id", "S001", "--name", "另一人", "--window", "1"],
        "135790",
    );
    assert!(!ok && out.contains("never reused"), "{out}");
    assert!(
        staff_cli(&hall, &["enable", "--id", "S001"], "")
            .0
            .eq(&false)
    );

    for kind in [
        "staff_added",
        "staff_disabled",
        "staff_enabled",
        "staff_pin_reset",
        "staff_unlocked",
        "staff_changed",
        "staff_removed",
    ] {
        let ev = hall.events_of(kind);
        assert_eq!(ev.len(), 1, "{kind}: {ev:?}");
        assert_eq!(ev[0]["staff"], "S001", "{kind}");
        assert_eq!(ev[0]["via"], "cli", "{kind}");
        assert!(
            ev[0]["by"].as_str().is_some_and(|b| !b.is_empty()),
            "{kind} names who"
        );
    }
    assert_eq!(
        hall.events_of("staff_changed")[0]["windows"],
        json!([[2, "B"]])
    );
}

/// Staff account management over the API: only an admin may (a supervisor is refused
/// with 403 naming why), every verb works, bad input names its field, each change is an
/// audit event naming the admin (`via` = `web`) committed with the change, and disabling
/// or removing an account signs it out of its window in the same transaction.
#[test]
fn admins_and_only_admins_manage_staff_accounts_over_the_api() {
    let hall = Hall::new();
    hall.add_staff("A001", "135790", &["--role", "admin"]);
    hall.add_staff("J001", "246801", &["--role", "supervisor"]);
    hall.add_staff("S001", "112233", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    let token = |id: &str, pin: &str, window: Option<u32>| {
        let (s, b) = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": id, "pin": pin, "window": window})),
        );
        assert_eq!(s, 201, "{b}");
        format!("Bearer {}", b["token"].as_str().unwrap())
    };
    let admin = token("A001", "135790", None);
    let supervisor = token("J001", "246801", None);
    let clerk = token("S001", "112233", Some(1));
    let call = |method: &str, path: &str, who: &str, body: Option<serde_json::Value>| {
        let url = format!("{}/api/v1/staff{path}", d.url);
        let req = match method {
            "GET" => return send(c.get(url).header("Authorization", who).call()),
            "DELETE" => return send(c.delete(url).header("Authorization", who).call()),
            "PATCH" => c.patch(url),
            _ => c.post(url),
        };
        send(
            req.header("Authorization", who)
                .send_json(body.unwrap_or(json!({}))),
        )
    };

    // A supervisor (and a clerk) is refused, with the reason, and nothing changes.
    for who in [&supervisor, &clerk] {
        let (s, b) = call("GET", "", who, None);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("admin_required")),
            "{b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap().contains("admin"),
            "{b}"
        );
        let (s, _) = call("POST", "/S001/disable", who, None);
        assert_eq!(s, 403);
    }
    assert_eq!(call("GET", "", "Bearer forged", None).0, 401);
    assert!(hall.events_of("staff_disabled").is_empty());

    // Bad input: 4xx naming the field.
    let bad = |body: serde_json::Value| {
        let (s, b) = call("POST", "", &admin, Some(body));
        (s, b["error"]["field"].as_str().map(String::from))
    };
    let ok = json!({"id": "S002", "name": "李娜", "pin": "864200", "roles": ["staff"], "windows": [{"window": 2, "role": "B"}]});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    assert_eq!(bad(with("pin", json!("12"))), (422, Some("pin".into())));
    assert_eq!(bad(with("id", json!(""))), (422, Some("id".into())));
    assert_eq!(bad(with("name", json!(" "))), (422, Some("name".into())));
    assert_eq!(
        bad(with("roles", json!(["root"]))),
        (422, Some("roles[0]".into()))
    );
    assert_eq!(
        bad(with("windows", json!([{"window": 99}]))),
        (422, Some("windows[0].window".into()))
    );
    assert_eq!(
        bad(with("windows", json!([]))),
        (422, Some("windows".into()))
    );
    assert_eq!(bad(with("id", json!("S001"))), (409, Some("id".into())));
    assert!(
        hall.events_of("staff_added")
            .iter()
            .all(|e| e["via"] == "cli")
    );

    // Every verb, each an audit event naming the admin.
    let (s, b) = call("POST", "", &admin, Some(ok.clone()));
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["account"]["state"], "active");
    assert!(
        !b.to_string().contains("864200"),
        "the PIN is never shown back"
    );
    let (s, list) = call("GET", "", &admin, None);
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A001", "J001", "S001", "S002"]);
    assert!(!list.to_string().contains("argon2"));

    // Disabling a signed-in clerk ends the session and signs out of window 1, together.
    let (s, b) = call("POST", "/S001/disable", &admin, None);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["account"]["state"], "disabled");
    let kinds: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["staff_disabled", "staff_signed_out"], "{b}");
    assert_eq!(
        b["events"][1]["seq"].as_i64(),
        b["events"][0]["seq"].as_i64().map(|s| s + 1)
    );
    assert_eq!(b["events"][1]["payload"]["reason"], "account_changed");
    let (s, w) = send(
        c.get(format!("{}/api/v1/windows/1", d.url))
            .header("Authorization", &admin)
            .call(),
    );
    assert_eq!((s, &w["staff"]), (200, &serde_json::Value::Null), "{w}");
    let (s, _) = send(
        c.get(format!("{}/api/v1/sessions/current", d.url))
            .header("Authorization", &clerk)
            .call(),
    );
    assert_eq!(s, 401, "the disabled clerk's session ended");
    assert_eq!(call("POST", "/S001/enable", &admin, None).0, 200);
    for _ in 0..5 {
        let _ = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": "S002", "pin": "000000", "window": 2})),
        );
    }
    let (_, list) = call("GET", "", &admin, None);
    let s002 = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "S002")
        .unwrap()
        .clone();
    assert_eq!(s002["state"], "locked", "{s002}");
    assert!(s002["locked_until"].as_i64().is_some());
    assert_eq!(call("POST", "/S002/unlock", &admin, None).0, 200);
    let (s, b) = call("POST", "/S002/reset-pin", &admin, Some(json!({"pin": "x"})));
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("pin")), "{b}");
    let (s, b) = call(
        "POST",
        "/S002/reset-pin",
        &admin,
        Some(json!({"pin": "97531086"})),
    );
    assert_eq!(s, 200, "{b}");
    token("S002", "97531086", Some(2));
    let (s, b) = call(
        "PATCH",
        "/S002",
        &admin,
        Some(json!({"roles": ["staff", "supervisor"], "windows": [{"window": 3, "role": "A"}]})),
    );
    assert_eq!(s, 200, "{b}");
    let kinds: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["staff_changed", "staff_signed_out"],
        "window 2 is no longer theirs: {b}"
    );
    assert_eq!(b["account"]["windows"], json!([{"window": 3, "role": "A"}]));
    // An admin cannot lock themselves out.
    let (s, b) = call("POST", "/A001/disable", &admin, None);
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("own_account")));
    assert_eq!(call("POST", "/S404/enable", &admin, None).0, 404);
    assert_eq!(call("POST", "/S002/fly", &admin, None).0, 404);
    let (s, b) = call("DELETE", "/S002", &admin, None);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["account"]["state"], "removed");
    let (_, list) = call("GET", "", &admin, None);
    assert!(!list.to_string().contains("S002"));
    let (s, b) = call("POST", "", &admin, Some(with("name", json!("另一人"))));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("staff_exists")),
        "a removed id is never reused: {b}"
    );

    for kind in [
        "staff_added",
        "staff_disabled",
        "staff_enabled",
        "staff_unlocked",
        "staff_pin_reset",
        "staff_changed",
        "staff_removed",
    ] {
        let web: Vec<_> = hall
            .events_of(kind)
            .into_iter()
            .filter(|e| e["via"] == "web")
            .collect();
        assert_eq!(web.len(), 1, "{kind}: {web:?}");
        assert_eq!(web[0]["by"], "A001", "{kind}");
        assert!(!web[0].to_string().contains("97531086"), "{kind}");
    }
    assert_eq!(
        hall.events_of("staff_changed")[0]["windows"],
        json!([[3, "A"]])
    );
    // The account row changed in the same transaction as its audit event: both or neither.
    let db = hall.database();
    let (removed, event_at): (Option<i64>, i64) = db
        .query_row(
            "SELECT (SELECT removed_at FROM staff WHERE id = 'S002'), (SELECT at FROM events WHERE type = 'staff_removed')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(removed, Some(event_at));
}

#[test]
fn a_kiosk_rings_for_help_once_staff_acknowledge_it_and_a_restart_keeps_it_open() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let c = client();
    {
        let d = hall.start();
        let post = |path: &str, headers: &[(&str, &str)], body: serde_json::Value| {
            let mut req = c.post(format!("{}{path}", d.url));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            send(req.send_json(body))
        };
        let code =
            |r: &(u16, serde_json::Value)| (r.0, r.1["error"]["code"].as_str().map(String::from));
        let field =
            |r: &(u16, serde_json::Value)| (r.0, r.1["error"]["field"].as_str().map(String::from));

        // Bad input names the field.
        let r = post("/api/v1/help", &[("X-Kiosk-Id", "lobby")], json!({}));
        assert_eq!(field(&r), (422, Some("screen".into())), "{}", r.1);
        let r = post(
            "/api/v1/help",
            &[("X-Kiosk-Id", "lobby")],
            json!({"screen": "kitchen"}),
        );
        assert_eq!(field(&r), (422, Some("screen".into())), "{}", r.1);
        let r = post(
            "/api/v1/help",
            &[("X-Kiosk-Id", "lobby")],
            json!({"screen": "home", "urgent": true}),
        );
        assert_eq!(field(&r), (422, Some("urgent".into())), "{}", r.1);

        // The bell is a kiosk's: a staff token cannot ring it.
        let (s, b) = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
        );
        assert_eq!(s, 201, "{b}");
        let token = format!("Bearer {}", b["token"].as_str().unwrap());
        let r = post(
            "/api/v1/help",
            &[("Authorization", token.as_str())],
            json!({"screen": "home"}),
        );
        assert_eq!(code(&r), (403, Some("kiosk_only".into())), "{}", r.1);

        // The kiosk rings; presses while it is open record nothing more.
        let r = post(
            "/api/v1/help",
            &[("X-Kiosk-Id", "lobby")],
            json!({"screen": "services"}),
        );
        assert_eq!(r.0, 201, "{}", r.1);
        assert_eq!(r.1["help"]["kiosk"], "lobby");
        assert_eq!(r.1["already_open"], false);
        for screen in ["services", "ticket", "home"] {
            let r = post(
                "/api/v1/help",
                &[("X-Kiosk-Id", "lobby")],
                json!({"screen": screen}),
            );
            assert_eq!(r.0, 200, "{}", r.1);
            assert_eq!(r.1["already_open"], true);
            assert_eq!(r.1["help"]["screen"], "services", "the first press stands");
        }
        let r = post(
            "/api/v1/help",
            &[("X-Kiosk-Id", "floor2")],
            json!({"screen": "ticket"}),
        );
        assert_eq!(r.0, 201, "{}", r.1);
        assert_eq!(hall.events_of("help_requested").len(), 2);
        let (s, board) = send(c.get(format!("{}/api/v1/board", d.url)).call());
        assert_eq!(s, 200);
        let kiosks: Vec<_> = board["help"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kiosk"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kiosks, ["lobby", "floor2"]);

        // Acknowledging takes a signed-in member of staff.
        let r = post("/api/v1/help/floor2/ack", &[], json!({}));
        assert_eq!(code(&r), (401, Some("sign_in_required".into())), "{}", r.1);
        let r = post(
            "/api/v1/help/floor2/ack",
            &[("Authorization", token.as_str())],
            json!({}),
        );
        assert_eq!(r.0, 200, "{}", r.1);
        assert_eq!(r.1["by"], "S001");
        let r = post(
            "/api/v1/help/floor2/ack",
            &[("Authorization", token.as_str())],
            json!({}),
        );
        assert_eq!(code(&r), (404, Some("help_not_open".into())), "{}", r.1);
        assert_eq!(r.1["error"]["field"], "kiosk");
        assert_eq!(
            hall.events_of("help_acknowledged"),
            [json!({"type": "help_acknowledged", "kiosk": "floor2", "by": "S001"})]
        );
        assert_eq!(
            hall.events_of("help_requested")[0],
            json!({"type": "help_requested", "kiosk": "lobby", "screen": "services"})
        );
    }

    // Retention may prune the events (delivered ones older than the limit): the open
    // request is state of its own and survives both that and a restart.
    {
        let db = rusqlite::Connection::open(hall.dir.path().join("data").join("hallq.db")).unwrap();
        db.execute_batch(
            "UPDATE events SET delivered_at = 1 WHERE delivered_at IS NULL; DELETE FROM events;",
        )
        .unwrap();
    }
    assert!(hall.events_of("help_requested").is_empty());
    let d = hall.start();
    let (s, open) = send(c.get(format!("{}/api/v1/help", d.url)).call());
    assert_eq!(s, 200);
    let open = open["help"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kiosk"], "lobby");
    assert_eq!(open[0]["screen"], "services");
    // Still one per kiosk after the restart.
    let (s, b) = send(
        c.post(format!("{}/api/v1/help", d.url))
            .header("X-Kiosk-Id", "lobby")
            .send_json(json!({"screen": "home"})),
    );
    assert_eq!((s, b["already_open"].as_bool()), (200, Some(true)), "{b}");
}
