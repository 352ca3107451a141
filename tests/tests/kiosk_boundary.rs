//! The kiosk boundary and personal data (issue 24): who may withdraw a ticket, and what
//! the events say about a citizen's ID number.

use hallq_tests::{Hall, client, send};
use serde_json::json;
use sha2::{Digest, Sha256};

#[test]
fn only_the_citizen_with_the_token_or_staff_with_a_reason_withdraw_a_ticket() {
    let hall = Hall::new();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let c = client();
    let take = |key: &str| {
        let (s, b) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert!(s == 201 || s == 200, "{b}");
        let token = b["token"]
            .as_str()
            .expect("a token for the citizen")
            .to_string();
        (b["ticket"]["id"].as_u64().expect("id"), token)
    };
    let (first, token1) = take("a");
    let (second, token2) = take("b");
    assert_eq!(token1.len(), 32);
    assert_ne!(token1, token2);
    // A retry answers the same ticket and the same token.
    assert_eq!(take("a"), (first, token1.clone()));
    let withdraw = |id: u64, token: Option<&str>| {
        let mut r = c.delete(format!("{}/api/v1/tickets/{id}", d.url));
        if let Some(t) = token {
            r = r.header("X-Ticket-Token", t);
        }
        let (s, b) = send(r.call());
        (s, b["error"]["code"].as_str().map(String::from))
    };
    // The kiosk alone (loopback) may no longer withdraw anybody's ticket.
    assert_eq!(
        withdraw(first, None),
        (403, Some("ticket_token_required".into()))
    );
    assert_eq!(
        withdraw(first, Some(&token2)),
        (403, Some("not_your_ticket".into()))
    );
    assert_eq!(withdraw(first, Some(&token1)).0, 200);
    // Staff: only with a reason, recorded by name.
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let bearer = format!("Bearer {}", b["token"].as_str().expect("token"));
    let (s, b) = send(
        c.delete(format!("{}/api/v1/tickets/{second}", d.url))
            .header("Authorization", &bearer)
            .call(),
    );
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("reason")),
        "{b}"
    );
    let (s, b) = send(
        c.delete(format!("{}/api/v1/tickets/{second}", d.url))
            .header("Authorization", &bearer)
            .force_send_body()
            .send_json(json!({"reason": "市民已离开大厅"})),
    );
    assert_eq!(s, 200, "{b}");
    let cancelled = hall.events_of("ticket_cancelled");
    let by: Vec<_> = cancelled
        .iter()
        .map(|e| (e["by"].as_str(), e["note"].as_str()))
        .collect();
    assert_eq!(
        by,
        vec![
            (Some("citizen"), None),
            (Some("staff:S001"), Some("市民已离开大厅"))
        ]
    );
    // The event carries the token's hash, never the token.
    let issued = hall.events_of("ticket_issued");
    let hash = hex::encode(Sha256::digest(token1.as_bytes()));
    assert_eq!(
        issued[0]["ticket"]["token_hash"].as_str(),
        Some(hash.as_str())
    );
    let all = hall.database();
    let text: String = all
        .query_row("SELECT group_concat(payload, ' ') FROM events", [], |r| {
            r.get(0)
        })
        .expect("events");
    assert!(!text.contains(&token1) && !text.contains(&token2));
}

/// The ID number of a citizen born 1990 in 东城区 (110101), with its check digit.
fn id_number(date: &str, seq: u32) -> String {
    let body = format!("110101{date}{seq:03}");
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

#[test]
fn an_id_number_cannot_be_recovered_from_the_events_by_trying_the_candidates() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let secret = id_number("19900307", 451);
    let (s, b) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB", "citizen_id": secret})),
    );
    assert_eq!(s, 201, "{b}");
    let (_, health) = send(c.get(format!("{}/api/v1/health", d.url)).call());
    let controller = health["controller_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let db = hall.database();
    let text: String = db
        .query_row("SELECT group_concat(payload, ' ') FROM events", [], |r| {
            r.get(0)
        })
        .expect("events");
    assert!(!text.contains(&secret), "the raw ID is in the events");
    // Every hex string an attacker reading the stream sees.
    let seen: std::collections::HashSet<String> = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() >= 16)
        .map(str::to_lowercase)
        .collect();
    let mut tried = 0u32;
    let mut found = Vec::new();
    let start = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).expect("date");
    for day in 0..365 {
        let date = (start + chrono::Days::new(day))
            .format("%Y%m%d")
            .to_string();
        for seq in 0..1000 {
            let id = id_number(&date, seq);
            tried += 1;
            for salted in [format!("{controller}:{id}"), id.clone()] {
                let h = hex::encode(Sha256::digest(salted.as_bytes()));
                if seen.iter().any(|w| h.starts_with(w.as_str())) {
                    found.push(id.clone());
                }
            }
        }
    }
    println!(
        "tried {tried} candidate ID numbers against {} hex strings",
        seen.len()
    );
    assert!(tried > 364_000);
    assert!(found.is_empty(), "recovered from the events: {found:?}");
    // The hall's secret exists, readable by its owner alone.
    let key = hall.dir.path().join("data").join("hall.key");
    let found_key = std::fs::read_dir(hall.dir.path())
        .expect("dir")
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.ends_with("hall.key"))
        .unwrap_or(key);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&found_key)
        .map(|m| m.permissions().mode() & 0o777)
        .expect("hall.key exists in the data directory");
    assert_eq!(mode, 0o600);
    drop(d);
}

/// The hall's config with `[server] hosts` set.
fn hall_with_hosts(hosts: &str) -> Hall {
    let hall = Hall::new();
    let text = std::fs::read_to_string(&hall.config).expect("config");
    let text = text.replacen(
        "kiosk_keys = []",
        &format!("kiosk_keys = []\nhosts = {hosts}"),
        1,
    );
    std::fs::write(&hall.config, text).expect("config");
    hall
}

#[test]
fn a_request_for_a_host_name_the_hall_did_not_configure_is_refused() {
    let hall = hall_with_hosts(r#"["hall.example"]"#);
    let d = hall.start();
    let c = client();
    let port = d.url.rsplit(':').next().expect("port").to_string();
    let get = |host: &str| {
        let (s, b) = send(
            c.get(format!("{}/api/v1/overview", d.url))
                .header("Host", host)
                .call(),
        );
        (s, b["error"]["code"].as_str().map(String::from))
    };
    // What a DNS-rebinding page sends: its own name, now pointing at this controller.
    for foreign in [
        format!("rebind.evil.example:{port}"),
        "evil.example".to_string(),
        format!("192.0.2.99:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        assert_eq!(
            get(&foreign),
            (421, Some("unknown_host".into())),
            "{foreign}"
        );
    }
    for own in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("hall.example:{port}"),
        "HALL.EXAMPLE".to_string(),
    ] {
        assert_eq!(get(&own).0, 200, "{own}");
    }
    // Pages and metrics too: a rebound page reads nothing.
    let (s, b) = send(
        c.get(format!("{}/metrics", d.url))
            .header("Host", "evil.example")
            .call(),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (421, Some("unknown_host"))
    );
}

#[test]
fn a_page_from_another_origin_cannot_issue_a_ticket_and_the_same_origin_can() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let port = d.url.rsplit(':').next().expect("port").to_string();
    let issue = |origin: Option<&str>| {
        let mut r = c.post(format!("{}/api/v1/tickets", d.url));
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        let (s, b) = send(r.send_json(json!({"service": "SB"})));
        (s, b["error"]["code"].as_str().map(String::from))
    };
    for foreign in [
        "http://evil.example".to_string(),
        // Another server on the controller itself is another origin all the same.
        format!(
            "http://localhost:{}",
            1 + port.parse::<u32>().expect("port")
        ),
        "http://127.0.0.1:3000".to_string(),
        "null".to_string(),
    ] {
        assert_eq!(
            issue(Some(&foreign)),
            (403, Some("cross_origin".into())),
            "{foreign}"
        );
    }
    assert!(hall.events_of("ticket_issued").is_empty());
    // The controller's own pages, and the kiosk app and curl (no Origin at all).
    assert_eq!(issue(Some(&d.url)).0, 201);
    assert_eq!(issue(None).0, 201);
    // Reading stays open to any origin: the browser keeps the answer from the page.
    let (s, _) = send(
        c.get(format!("{}/api/v1/overview", d.url))
            .header("Origin", "http://evil.example")
            .call(),
    );
    assert_eq!(s, 200);
}

#[test]
fn a_text_or_form_body_is_refused_and_a_json_body_issues_a_ticket() {
    let hall = Hall::new();
    let d = hall.start();
    let c = client();
    let post = |content_type: Option<&str>, body: &str| {
        let mut r = c.post(format!("{}/api/v1/tickets", d.url));
        if let Some(t) = content_type {
            r = r.header("Content-Type", t);
        }
        let (s, b) = send(r.send(body));
        (
            s,
            b["error"]["code"].as_str().map(String::from),
            b["error"]["field"].as_str().map(String::from),
        )
    };
    let refused = (
        415,
        Some("unsupported_media_type".to_string()),
        Some("Content-Type".to_string()),
    );
    // What a page on any site can send without a preflight.
    assert_eq!(post(Some("text/plain"), r#"{"service":"SB"}"#), refused);
    assert_eq!(
        post(Some("text/plain;charset=UTF-8"), r#"{"service":"SB"}"#),
        refused
    );
    assert_eq!(
        post(
            Some("application/x-www-form-urlencoded"),
            r#"{"service":"SB"}"#
        ),
        refused
    );
    assert_eq!(
        post(
            Some("multipart/form-data; boundary=x"),
            "--x\r\nContent-Disposition: form-data; name=\"service\"\r\n\r\nSB\r\n--x--\r\n"
        ),
        refused
    );
    assert!(hall.events_of("ticket_issued").is_empty());
    assert_eq!(
        post(
            Some("application/json; charset=utf-8"),
            r#"{"service":"SB"}"#
        )
        .0,
        201
    );
    assert_eq!(post(Some("application/json"), r#"{"service":"SB"}"#).0, 201);
    assert_eq!(hall.events_of("ticket_issued").len(), 2);
}
