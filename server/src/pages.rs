//! The county dashboard (电子监察): plain HTML, CSS and JavaScript from `server/web/`,
//! compiled into the binary, a client of the JSON API. The bearer token lives in
//! `sessionStorage` and goes in a header, never a cookie (no CSRF surface), and a strict
//! Content-Security-Policy allows only the embedded scripts and styles.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::Web;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file under `server/web/`: name, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("county.html", HTML, include_bytes!("../web/county.html")),
    ("county.css", CSS, include_bytes!("../web/county.css")),
    ("county.js", JS, include_bytes!("../web/county.js")),
];

/// The citizen's phone page (`/t/{token}`, [`crate::phone`]): `hallq`'s own files.
const PHONE: &[&str] = &[
    "phone.html",
    "phone.css",
    "phone.js",
    "phone-gone.html",
    "phone-busy.html",
];

/// `/` (the dashboard) and `/web/{name}`.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/", get(|| async { page("county.html") }))
        .route(
            "/web/{name}",
            get(|Path(name): Path<String>| async move { page(&name) }),
        )
}

/// An embedded file with a status other than 200.
pub fn page_with_status(name: &str, status: StatusCode) -> Response {
    let mut resp = page(name);
    *resp.status_mut() = status;
    resp
}

/// An embedded file (the dashboard's, or the phone page's from `hallq`), with its
/// headers; a 404 page for any other name.
pub fn page(name: &str) -> Response {
    let found = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, mime, body)| (*mime, *body))
        .or_else(|| {
            PHONE
                .contains(&name)
                .then(|| hallq::api::web_asset(name))
                .flatten()
        });
    let Some((mime, body)) = found else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, HeaderValue::from_static(HTML))],
            "<!doctype html><meta charset=utf-8><title>404</title><p>没有这个页面 · Page not found</p>",
        )
            .into_response();
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if mime == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_files() {
        let html = std::str::from_utf8(ASSETS[0].2).expect("utf-8");
        for part in html.split("/web/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "county.html names /web/{name}, which is not embedded"
            );
        }
    }
}
