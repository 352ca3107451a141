//! Error shapes (issue 24): every error the API gives is JSON with a code and, when one
//! field is at fault, its name; messages show no Rust debug text and repeat at most a
//! few dozen characters of the input.

use hallq_tests::{Daemon, Hall, client, send};
use serde_json::{Value, json};

/// A daemon with S001 signed in at window 1, and the bearer header for them.
fn staffed_hall() -> (Hall, Daemon, String) {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let (s, b) = send(
        client()
            .post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let bearer = format!("Bearer {}", b["token"].as_str().expect("token"));
    (hall, d, bearer)
}

/// The status, code, field and message of an error answer.
fn error_of(status: u16, body: &Value) -> (u16, Option<&str>, Option<&str>, &str) {
    (
        status,
        body["error"]["code"].as_str(),
        body["error"]["field"].as_str(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[test]
fn path_and_query_parameters_that_do_not_parse_answer_json_naming_the_parameter() {
    let (_hall, d, bearer) = staffed_hall();
    let c = client();
    for (method, path, param) in [
        ("POST", "/api/v1/windows/-1/call-next", "n"),
        ("GET", "/api/v1/windows/abc", "n"),
        ("GET", "/api/v1/windows/4294967296", "n"),
        ("GET", "/api/v1/stream?after=abc", "after"),
    ] {
        let url = format!("{}{path}", d.url);
        let req = match method {
            "POST" => c
                .post(url)
                .header("Authorization", &bearer)
                .send_json(json!({})),
            _ => c.get(url).header("Authorization", &bearer).call(),
        };
        let (s, b) = send(req);
        let (status, code, field, message) = error_of(s, &b);
        assert_eq!(status, 400, "{method} {path}: {b}");
        assert_eq!(code, Some("invalid_parameter"), "{method} {path}: {b}");
        assert_eq!(field, Some(param), "{method} {path}: {b}");
        assert!(!message.is_empty(), "{method} {path}: {b}");
    }
    // A method an endpoint does not take is JSON too.
    let (s, b) = send(
        c.put(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{b}"
    );
}

#[test]
fn messages_show_no_rust_debug_text_and_call_names_the_number() {
    let (_hall, d, bearer) = staffed_hall();
    let c = client();
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/2/call-next", d.url))
            .header("Authorization", &bearer)
            .header("Accept-Language", "en")
            .send_json(json!({})),
    );
    let (status, code, _, message) = error_of(s, &b);
    assert_eq!((status, code), (403, Some("wrong_window")), "{b}");
    assert!(
        message.contains("window 1") && !message.contains("Some(") && !message.contains("None"),
        "{message}"
    );
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/no-such-action", d.url))
            .header("Authorization", &bearer)
            .send_json(json!({})),
    );
    let (status, code, _, message) = error_of(s, &b);
    assert_eq!((status, code), (404, Some("unknown_action")), "{b}");
    assert!(!message.contains('"'), "{message}");
    // `call` takes a `number`: the refusal names that field, not the engine's `ticket`.
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/call", d.url))
            .header("Authorization", &bearer)
            .send_json(json!({"number": "Z999"})),
    );
    let (status, code, field, _) = error_of(s, &b);
    assert_eq!(
        (status, code, field),
        (422, Some("unknown_ticket"), Some("number")),
        "{b}"
    );
}

#[test]
fn a_body_with_data_after_the_json_document_is_refused_and_issues_nothing() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    for body in [
        r#"{"service":"SB"} {"service":"SB"}"#,
        r#"{"service":"SB"}garbage"#,
        r#"{"service":"SB"}]"#,
    ] {
        let (s, b) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Content-Type", "application/json")
                .send(body),
        );
        let (status, code, field, _) = error_of(s, &b);
        assert_eq!(
            (status, code, field),
            (422, Some("invalid_field"), Some("body")),
            "{body}: {b}"
        );
    }
    assert!(hall.events_of("ticket_issued").is_empty());
    // Whitespace after the document is fine.
    let (s, b) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .header("Content-Type", "application/json")
            .send("{\"service\":\"SB\"}\n  \r\n"),
    );
    assert_eq!(s, 201, "{b}");
}

#[test]
fn an_unknown_service_of_two_megabytes_is_named_in_a_few_dozen_characters() {
    let hall = Hall::new();
    let d = hall.start();
    let name = "X".repeat(1_900_000);
    let (s, b) = send(
        client()
            .post(format!("{}/api/v1/tickets", d.url))
            .header("Accept-Language", "en")
            .send_json(json!({"service": name})),
    );
    let (status, code, field, message) = error_of(s, &b);
    assert_eq!(
        (status, code, field),
        (422, Some("unknown_service"), Some("service")),
        "{}",
        &b.to_string()[..200.min(b.to_string().len())]
    );
    let body_len = b.to_string().len();
    assert!(body_len < 400, "the error body is {body_len} bytes");
    assert!(message.contains(&"X".repeat(40)), "{message}");
    assert!(!message.contains(&"X".repeat(41)), "{message}");
}

/// Issues a ticket, and serves and finishes it at window 1; its id.
fn finished_ticket(d: &Daemon, bearer: &str) -> u64 {
    let c = client();
    let (s, b) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{b}");
    let id = b["ticket"]["id"].as_u64().expect("id");
    for action in ["call-next", "start", "finish"] {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/1/{action}", d.url))
                .header("Authorization", bearer)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
    }
    id
}

#[test]
fn a_rating_comment_with_a_control_or_bidi_override_character_is_refused() {
    let (hall, d, bearer) = staffed_hall();
    let c = client();
    let id = finished_ticket(&d, &bearer);
    for comment in [
        "很好\u{0}",
        "很好\u{1b}[2J",
        "\u{202E}好很",
        "good\u{2066}isolate",
    ] {
        let (s, b) = send(
            c.post(format!("{}/api/v1/ratings", d.url))
                .send_json(json!({
                    "ticket": id, "level": "非常满意", "comment": comment,
                })),
        );
        let (status, code, field, _) = error_of(s, &b);
        assert_eq!(
            (status, code, field),
            (422, Some("bad_text"), Some("comment")),
            "{comment:?}: {b}"
        );
    }
    assert!(hall.events_of("rating_recorded").is_empty());
    // A comment over two lines (the rating page's box takes Enter) is kept.
    let (s, b) = send(
        c.post(format!("{}/api/v1/ratings", d.url))
            .send_json(json!({
                "ticket": id, "level": "非常满意", "comment": "窗口人员很耐心\n谢谢",
            })),
    );
    assert_eq!(s, 201, "{b}");
}

#[test]
fn an_appointment_more_than_366_days_ahead_is_refused() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let book = |code: &str, slot: Value| {
        send(
            c.post(format!("{}/api/v1/appointments", d.url))
                .send_json(json!({"service": "SB", "slot_at": slot, "code": code})),
        )
    };
    for (code, slot) in [
        ("F1", json!(i64::MAX)),
        ("F2", json!("9999-12-31 09:00")),
        ("F3", json!(253_402_300_799_000i64)),
    ] {
        let (s, b) = book(code, slot.clone());
        let (status, code, field, _) = error_of(s, &b);
        assert_eq!(
            (status, code, field),
            (422, Some("slot_too_far"), Some("slot_at")),
            "{slot}: {b}"
        );
    }
    let in_a_month = chrono::Utc::now().timestamp_millis() + 30 * 86_400_000;
    let (s, b) = book("N1", json!(in_a_month));
    assert_eq!(s, 201, "{b}");
}
