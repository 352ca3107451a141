//! Whole HTTP requests: method, path and query, headers and body, through the real
//! router (the Host/Origin/Content-Type guard, every extractor, every handler) of one
//! controller with a temporary database. Whatever arrives, the answer is never a 5xx,
//! and an error is JSON with an `error.code` (the HTML pages under `/web/` and `/rate/`
//! answer their 404 in HTML, for people).
//!
//! Input: the first byte picks the method (low 3 bits), whether the request carries the
//! token of the staff member signed in at window 1 (bit 3), and whether it comes over
//! loopback or from the LAN (bit 4). Then the path and query up to the first newline,
//! then `name: value` header lines up to an empty line, then the body.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use hallq::api::{AppState, app};
use hallq::config::Config;
use hallq::core::HallCore;
use hallq::devices::health::Devices;
use hallq::store::Store;
use hallq::store::staff::{self, Permission, StaffRecord};
use hallq_engine::{Role, Timestamp};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const METHODS: [Method; 8] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::POST,
];

/// The staff member signed in at window 1 (an admin, so supervision pages answer too).
const STAFF: &str = "FUZZ01";
const PIN: &str = "246810";

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    token: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::example();
        config.queue.calendar.always_open = true;
        config.storage.data_dir = dir.path().to_path_buf();
        config.server.hosts = vec!["hall.example".into()];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (state, token) = rt.block_on(async {
            let store = Store::open(&config.database()).expect("store");
            let record = StaffRecord {
                id: STAFF.into(),
                name: "测试".into(),
                roles: vec![Permission::Admin],
                windows: vec![(1, Role::A)],
            };
            staff::add(store.conn(), &record, PIN, Timestamp(0)).expect("staff");
            let (hall, _core) = HallCore::start(
                hallq::in_force::InForce::file(config.queue.clone(), config.guide.clone()),
                store,
            )
            .expect("core");
            let devices = Devices::load(hall.clone()).await.expect("devices");
            let personal = hallq::personal::PersonalKey::from_bytes([7; 32]);
            let state =
                AppState::new(hall, Arc::new(config), devices, None, personal).expect("state");
            let body = format!(r#"{{"staff_id":"{STAFF}","pin":"{PIN}","window":1}}"#);
            let mut req = Request::post("/api/v1/sessions")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request");
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
            let resp = app(state.clone()).oneshot(req).await.expect("infallible");
            assert!(resp.status().is_success(), "sign-in: {}", resp.status());
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            (state, v["token"].as_str().expect("token").to_string())
        });
        World {
            rt,
            state,
            token,
            _dir: dir,
        }
    })
}

/// `bytes` as a request target: kept when it parses, else with every byte outside
/// printable ASCII percent-encoded (and a leading `/`), so that odd bytes still reach
/// the router rather than ending the input early.
fn target(bytes: &[u8]) -> String {
    let mut t = String::with_capacity(bytes.len() + 1);
    if bytes.first() != Some(&b'/') {
        t.push('/');
    }
    for &b in bytes {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'#' | b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            t.push(b as char);
        } else {
            t.push_str(&format!("%{b:02X}"));
        }
    }
    t
}

/// Whether a request would end or change the fuzzer's own sign-in (sign-out, its
/// account's PIN, roles or state): sent without the token, so later inputs still act
/// as the signed-in member of staff.
fn touches_own_account(method: &Method, path: &str) -> bool {
    let decoded = percent_decode(path).to_ascii_lowercase();
    *method != Method::GET && (decoded.contains("/sessions") || decoded.contains("/staff"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if b[i] == b'%'
            && let Some(Ok(v)) = hex.map(|h| u8::from_str_radix(h, 16))
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let method = METHODS[(pick & 7) as usize].clone();
    let (line, mut rest) = match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (&rest[..nl], &rest[nl + 1..]),
        None => (rest, &[][..]),
    };
    let path = target(line);
    let mut req = match Request::builder()
        .method(method.clone())
        .uri(path.as_str())
        .body(Body::empty())
    {
        Ok(r) => r,
        Err(_) => return,
    };
    // Header lines, up to an empty line (or the end).
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                req.headers_mut().append(n, v);
            }
        }
    }
    if pick & 8 != 0 && !touches_own_account(&method, &path) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", w.token)) {
            req.headers_mut().insert("authorization", v);
        }
    }
    let peer = if pick & 16 != 0 {
        SocketAddr::from(([192, 0, 2, 7], 40000))
    } else {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    };
    req.extensions_mut().insert(ConnectInfo(peer));
    *req.body_mut() = Body::from(rest.to_vec());

    let resp =
        w.rt.block_on(app(w.state.clone()).oneshot(req))
            .expect("infallible");
    let status = resp.status();
    assert!(status.as_u16() < 500, "{method} {path}: {status}");
    let page = path.starts_with("/web/") || path.starts_with("/rate/");
    if status.is_client_error() && method != Method::HEAD && !page {
        let bytes =
            w.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: {status} is not JSON: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
    }
});
