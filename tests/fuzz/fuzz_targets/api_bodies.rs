//! Request bodies: whatever a client sends to the local API, the answer is a success or
//! a 4xx with a JSON error body, never a 500 and never a panic. One controller (store,
//! core thread, router) serves every input; a staff member is signed in at window 1
//! and every request carries their token, so the window actions read their bodies
//! instead of stopping at 401. Inputs can also set one of the headers the API reads
//! by hand (Idempotency-Key, Accept-Language, X-Kiosk-Key, Last-Event-ID).
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request};
use hallq::api::{AppState, app};
use hallq::config::Config;
use hallq::core::HallCore;
use hallq::devices::health::Devices;
use hallq::store::Store;
use hallq::store::staff::{self, Permission, StaffRecord};
use hallq_engine::{Role, Timestamp};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ENDPOINTS: [&str; 14] = [
    "/api/v1/tickets",
    "/api/v1/ratings",
    "/api/v1/appointments",
    "/api/v1/sessions",
    "/api/v1/windows/1/transfer",
    "/api/v1/windows/1/call",
    "/api/v1/windows/1/finish",
    "/api/v1/appointments/X1/check-in",
    "/api/v1/windows/1/call-next",
    "/api/v1/windows/1/pause",
    "/api/v1/windows/1/no-show",
    "/api/v1/services/SB/checklist",
    "/api/v1/voice/prompt",
    "/api/v1/tickets/1/reprint",
];

/// Headers the API parses itself.
const HEADERS: [&str; 4] = [
    "idempotency-key",
    "accept-language",
    "x-kiosk-key",
    "last-event-id",
];

/// The staff member signed in at window 1.
const STAFF: &str = "FUZZ01";
const PIN: &str = "246810";

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    token: String,
    _dir: tempfile::TempDir,
}

fn post(path: &str, token: &str, body: Vec<u8>) -> Request<Body> {
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
    req
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::example();
        config.queue.calendar.always_open = true;
        config.storage.data_dir = dir.path().to_path_buf();
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
            let resp = app(state.clone())
                .oneshot(post("/api/v1/sessions", "", body.into_bytes()))
                .await
                .expect("infallible");
            assert!(resp.status().is_success(), "sign-in: {}", resp.status());
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            let token = v["token"].as_str().expect("token").to_string();
            (state, token)
        });
        World {
            rt,
            state,
            token,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let path = ENDPOINTS[(pick & 0x7F) as usize % ENDPOINTS.len()];
    // With the top bit of the first byte set, the input up to the first newline is the
    // value of one of the headers the API reads by hand, and the rest is the body.
    let (header, body) = match body.iter().position(|&b| b == b'\n') {
        Some(nl) if pick & 0x80 != 0 => (Some(&body[..nl]), &body[nl + 1..]),
        _ => (None, body),
    };
    let mut req = post(path, &w.token, body.to_vec());
    if let Some(value) = header
        && let Ok(value) = HeaderValue::from_bytes(value)
    {
        let name = HEADERS[(pick as usize >> 4) & 3];
        req.headers_mut().insert(name, value);
    }
    let resp =
        w.rt.block_on(app(w.state.clone()).oneshot(req))
            .expect("infallible");
    let status = resp.status();
    assert!(status.as_u16() < 500, "{path}: {status} for {body:?}");
    if status.is_client_error() {
        let bytes =
            w.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error body");
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
    }
});
