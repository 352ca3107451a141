//! What every request passes before it is routed, because a browser on the controller
//! (or on a kiosk's LAN) must not be able to act as a kiosk for a page it loaded from
//! elsewhere:
//!
//! - `Host` must be a name of this controller: a loopback name (`localhost`,
//!   `127.0.0.1`, `[::1]`), the IP of `[server] listen`, a name in `[server] hosts`, or,
//!   when the controller listens on every address (`0.0.0.0`, `[::]`), any IP address. A
//!   DNS-rebinding page always arrives under a DNS name of its own, so a foreign name is
//!   refused (421 `unknown_host`) before it can read anything.
//! - A state-changing request (POST, PUT, PATCH, DELETE) with an `Origin` must come from
//!   the page's own origin, the one `Host` names (403 `cross_origin`). A request without
//!   `Origin` (the kiosk app, curl, the window devices) passes.
//! - A state-changing request to `/api/` with a body must say `Content-Type:
//!   application/json` (415 `unsupported_media_type`): `text/plain` and form bodies are
//!   what a browser sends to another site without asking first.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::config::Server;

/// The names this controller answers to, from `[server]`.
#[derive(Debug, Clone)]
pub(super) struct Hosts {
    listen: IpAddr,
    names: Vec<String>,
}

impl Hosts {
    pub(super) fn new(server: &Server) -> Arc<Hosts> {
        Arc::new(Hosts {
            listen: server.listen.ip().to_canonical(),
            names: server
                .hosts
                .iter()
                .map(|h| normal_name(h.trim_start_matches('[').trim_end_matches(']')))
                .collect(),
        })
    }

    /// Whether `host` (without its port) names this controller.
    fn allows(&self, host: &str) -> bool {
        let host = normal_name(host);
        let ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
        match ip {
            Some(ip) => {
                ip.is_loopback()
                    || ip == self.listen
                    || self.listen.is_unspecified()
                    || self
                        .names
                        .iter()
                        .any(|n| n.parse::<IpAddr>().ok() == Some(ip))
            }
            None => host == "localhost" || self.names.contains(&host),
        }
    }
}

/// A host name compared without case, a trailing dot or IPv6 brackets' spelling.
fn normal_name(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `host[:port]` split in two; `[v6]:port` keeps its brackets. `None` for a value that
/// is not an authority.
fn split_authority(a: &str) -> Option<(&str, Option<&str>)> {
    if a.is_empty() || a.contains(['/', '@', ' ', '?', '#']) {
        return None;
    }
    if a.starts_with('[') {
        let end = a.find(']')?;
        let (host, rest) = a.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match a.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((a, None)),
    }
}

/// The request's `Host` (or the URI's authority), if it has one.
fn host_of(req: &Request) -> Option<Result<&str, ()>> {
    match req.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().map_err(|_| ())),
        None => req.uri().authority().map(|a| Ok(a.as_str())),
    }
}

fn unknown_host() -> ApiError {
    ApiError {
        field: Some("Host".into()),
        ..ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            "this controller does not answer to that host name; add it to [server] hosts",
        )
    }
}

/// Whether `origin` (`scheme://host[:port]`) is the origin `host` names.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (Some((oh, op)), Some((hh, hp))) = (split_authority(authority), split_authority(host))
    else {
        return false;
    };
    normal_name(oh) == normal_name(hh) && op.unwrap_or(default) == hp.unwrap_or(default)
}

fn changes_state(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether the request's `Content-Type` is JSON (`application/json`, any parameters).
fn is_json(headers: &HeaderMap) -> Option<bool> {
    let v = headers.get(header::CONTENT_TYPE)?;
    let essence = v
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|e| e.trim().to_ascii_lowercase());
    Some(essence.as_deref() == Some("application/json"))
}

/// Refuses what [the module](self) describes; passes everything else on.
pub(super) async fn guard(State(hosts): State<Arc<Hosts>>, req: Request, next: Next) -> Response {
    match check(&hosts, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(hosts: &Hosts, req: &Request) -> Result<(), ApiError> {
    let host = match host_of(req) {
        None => None,
        Some(Ok(h)) => {
            let (name, port) = split_authority(h).ok_or_else(unknown_host)?;
            if port.is_some_and(|p| p.parse::<u16>().is_err()) || !hosts.allows(name) {
                return Err(unknown_host());
            }
            Some(h)
        }
        Some(Err(())) => return Err(unknown_host()),
    };
    if !changes_state(req.method()) {
        return Ok(());
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = match (origin.to_str(), host) {
            (Ok(o), Some(h)) => same_origin(o.trim(), h),
            _ => false,
        };
        if !ok {
            return Err(ApiError {
                field: Some("Origin".into()),
                ..ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    "a page from another site may not change anything here",
                )
            });
        }
    }
    if req.uri().path().starts_with("/api/") {
        let has_body = req.body().size_hint().exact() != Some(0);
        let json = is_json(req.headers());
        if json == Some(false) || (json.is_none() && has_body) {
            return Err(ApiError {
                field: Some("Content-Type".into()),
                ..ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON, with Content-Type: application/json",
                )
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(listen: &str, names: &[&str]) -> Hosts {
        Hosts {
            listen: listen.parse().unwrap(),
            names: names.iter().map(|n| normal_name(n)).collect(),
        }
    }

    #[test]
    fn loopback_names_the_listen_ip_and_configured_names_are_this_controller() {
        let h = hosts("192.0.2.10", &["Hall.Example"]);
        for ok in [
            "localhost",
            "127.0.0.1",
            "[::1]",
            "192.0.2.10",
            "hall.example",
            "HALL.EXAMPLE.",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in ["evil.example", "192.0.2.11", "localhost.evil.example", ""] {
            assert!(!h.allows(refused), "{refused}");
        }
        assert!(hosts("0.0.0.0", &[]).allows("10.1.2.3"));
        assert!(!hosts("0.0.0.0", &[]).allows("rebind.evil.example"));
    }

    #[test]
    fn an_origin_is_the_same_only_with_the_same_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("http://hall.example", "HALL.example:80"));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_origin("http://localhost:3000", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:3000", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
        assert!(!same_origin("file://", "127.0.0.1:8080"));
    }
}
