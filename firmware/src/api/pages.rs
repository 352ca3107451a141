//! The web pages the controller serves itself: the window caller (`/counter`), the hall
//! call board (`/board`), the rating pad (`/rate/{window}`), the supervision
//! dashboard (`/supervision`, with its period figures and charts) and its printable
//! monthly report (`/supervision/report`, 月通报, A4), staff account management for admins (`/admin`), the
//! guide desk (`/desk`) and the
//! citizen's ticket status page (`/t/{token}`, served by `api::phone`). They are plain HTML, CSS and JavaScript from
//! `firmware/web/`, compiled into the binary so that a hall needs no web server and no
//! files beside the daemon; every page is a client of the JSON API and the live stream.
//!
//! Staff pages keep their bearer token in `sessionStorage` and send it in a header, never
//! in a cookie, so a page on another site cannot make the browser act for a signed-in
//! member of staff (no CSRF surface). A strict Content-Security-Policy allows only the
//! embedded scripts and styles.

use super::Path;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// One embedded file: its name under `/web/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Everything under `firmware/web/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("counter.html", HTML),
    asset!("board.html", HTML),
    asset!("rate.html", HTML),
    asset!("supervision.html", HTML),
    asset!("report.html", HTML),
    asset!("admin.html", HTML),
    asset!("desk.html", HTML),
    asset!("desk.css", CSS),
    asset!("desk.js", JS),
    asset!("common.css", CSS),
    asset!("board.css", CSS),
    asset!("counter.css", CSS),
    asset!("rate.css", CSS),
    asset!("supervision.css", CSS),
    asset!("report.css", CSS),
    asset!("admin.css", CSS),
    asset!("common.js", JS),
    asset!("counter.js", JS),
    asset!("board.js", JS),
    asset!("rate.js", JS),
    asset!("supervision.js", JS),
    asset!("charts.js", JS),
    asset!("period.js", JS),
    asset!("report.js", JS),
    asset!("admin.js", JS),
    asset!("index.js", JS),
    asset!("phone.html", HTML),
    asset!("phone-gone.html", HTML),
    asset!("phone-busy.html", HTML),
    asset!("phone.css", CSS),
    asset!("phone.js", JS),
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/counter", get(|| async { page("counter.html") }))
        .route("/board", get(|| async { page("board.html") }))
        .route("/supervision", get(|| async { page("supervision.html") }))
        .route("/supervision/report", get(|| async { page("report.html") }))
        .route("/admin", get(|| async { page("admin.html") }))
        .route("/desk", get(|| async { page("desk.html") }))
        .route("/rate/{window}", get(rate))
        .route(
            "/web/{file}",
            get(|Path(file): Path<String>| async move { page(&file) }),
        )
}

/// An embedded file under `/web/`: its media type and bytes (the hall server serves
/// the citizen's phone page from the same files).
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    find(name).map(|a| (a.mime, a.body))
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Serves an embedded file with headers that keep pages fresh after a firmware update
/// and lock scripts down to the embedded ones.
pub(super) fn page(name: &str) -> Response {
    let Some(a) = find(name) else {
        return not_found();
    };
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if a.mime == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
        );
    }
    debug_assert!(a.mime == HTML || a.mime == JS || a.mime == CSS);
    resp
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, HeaderValue::from_static(HTML))],
        "<!doctype html><meta charset=utf-8><title>404</title><p>没有这个页面 · Page not found</p>",
    )
        .into_response()
}

/// The rating pad of one window; an unknown window is a 404 rather than a pad that
/// would never wake.
async fn rate(State(s): State<AppState>, Path(window): Path<String>) -> Response {
    match window.parse::<u32>() {
        Ok(n) if s.hall.in_force().has_window(n) => page("rate.html"),
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_only_assets_that_are_embedded() {
        for a in ASSETS.iter().filter(|a| a.mime == HTML) {
            let text = std::str::from_utf8(a.body).unwrap();
            for part in text.split("/web/").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    find(&name).is_some(),
                    "{} refers to missing /web/{name}",
                    a.name
                );
            }
            assert!(
                !text.contains("<script>") && !text.contains(" onclick="),
                "{}: inline script would be blocked by the CSP",
                a.name
            );
        }
    }

    #[test]
    fn an_unknown_asset_is_a_404() {
        assert_eq!(page("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(page("board.js").status(), StatusCode::OK);
    }
}
