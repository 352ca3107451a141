//! Request bodies: whatever a client sends to the local API, the answer is a success or
//! a 4xx with a JSON error body, never a 500 and never a panic. One controller (store,
//! core thread, router) serves every input.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hallq::api::{AppState, app};
use hallq::config::Config;
use hallq::core::Hall;
use hallq::devices::health::Devices;
use hallq::store::Store;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ENDPOINTS: [&str; 8] = [
    "/api/v1/tickets",
    "/api/v1/ratings",
    "/api/v1/appointments",
    "/api/v1/sessions",
    "/api/v1/windows/1/transfer",
    "/api/v1/windows/1/call",
    "/api/v1/windows/1/finish",
    "/api/v1/appointments/X1/check-in",
];

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    _dir: tempfile::TempDir,
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
        let state = rt.block_on(async {
            let store = Store::open(&config.database()).expect("store");
            let (hall, _core) = Hall::start(config.queue.clone(), store).expect("core");
            let devices = Devices::load(hall.clone()).await.expect("devices");
            AppState::new(hall, Arc::new(config), devices, None).expect("state")
        });
        World {
            rt,
            state,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let path = ENDPOINTS[pick as usize % ENDPOINTS.len()];
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
    let resp = w
        .rt
        .block_on(app(w.state.clone()).oneshot(req))
        .expect("infallible");
    let status = resp.status();
    assert!(status.as_u16() < 500, "{path}: {status} for {body:?}");
    if status.is_client_error() {
        let bytes = w
            .rt
            .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error body");
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
    }
});
