//! Who may call the API: the bearer token, browser origins, the Host of an unauthenticated
//! API, and the content type of mutating requests. One pure decision ([`Access::check`]) run
//! by one middleware before any route, unknown routes included.
//!
//! Invariants:
//! - with a token configured, every request but the open probes (`GET /healthz`, `/readyz`,
//!   `/metrics`, unless `api.open_probes = false`) and the console's assets (`GET /`,
//!   `/console.js`, `/console.css`, `/favicon.svg`: the same bytes for everyone, no data)
//!   carries `Authorization: Bearer <token>`, compared in constant time;
//! - a request with an `Origin` header (a browser's) is refused unless that origin is listed
//!   or is the API's own (the origin names the `Host` the request is addressed to: the
//!   console): another web page can neither read the API nor change anything through it;
//! - without a token, only requests addressed to an IP address or `localhost` are served, so
//!   a DNS name rebound to the API's address cannot reach it;
//! - a request that changes something has a JSON content type, which no HTML form can send.

use axum::http::{header, HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;

use super::console::ASSETS;
use super::ApiError;

/// The routes that stay open to probes and scrapers when `api.open_probes` is true.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The API's access rules, from `[api]`.
#[derive(Clone, Default)]
pub(crate) struct Access {
    pub token: Option<String>,
    pub open_probes: bool,
    /// Serialized origins (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
}

impl Access {
    /// Whether a request may reach its route; the refusal says what was missing.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !self.allowed_origins.iter().any(|o| *o == origin) && !same_origin(&origin, headers)
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("requests from web pages are refused: origin `{origin}` is not in api.allowed_origins"),
                ));
            }
        }
        match &self.token {
            None => {
                if let Some(host) = headers.get(header::HOST) {
                    let host = String::from_utf8_lossy(host.as_bytes());
                    if !addresses_this_host(&host) {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            format!("Host `{host}` is not an IP address or localhost: without api.token the API only answers requests addressed to one (a DNS name could be rebound to it); set api.token to use names"),
                        ));
                    }
                }
            }
            Some(token) => {
                let read = method == Method::GET || method == Method::HEAD;
                let probe = self.open_probes && read && PROBES.contains(&path);
                let asset = read && ASSETS.iter().any(|(p, _, _)| *p == path);
                if !probe && !asset {
                    let given = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
                    match given {
                        None => {
                            return Err(ApiError::new(
                                StatusCode::UNAUTHORIZED,
                                "this route needs `Authorization: Bearer <api token>` (the CLI sends it from --token, TRIBUTARY_API_TOKEN or the config's api.token_file)",
                            ))
                        }
                        Some(given) if !bool::from(given.ct_eq(token.as_bytes())) => {
                            return Err(ApiError::new(
                                StatusCode::UNAUTHORIZED,
                                "the bearer token is not the API's token",
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        let reads = [Method::GET, Method::HEAD, Method::OPTIONS].contains(method);
        if !reads && !is_json(headers) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a request that changes something needs `Content-Type: application/json`",
            ));
        }
        Ok(())
    }
}

/// Whether `origin` (`scheme://host[:port]`) is the one the request is addressed to: the
/// console's own page. A page elsewhere has another host or port, and a DNS name rebound to
/// this address gets no further than [`Access::check`] lets that name go (no token: refused;
/// with one: the rebound page does not have it).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"]
        .iter()
        .filter_map(|scheme| origin.strip_prefix(scheme))
        .any(|authority| authority.eq_ignore_ascii_case(host))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a `Host` header names the machine by address or as `localhost`, port or not.
fn addresses_this_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(k.clone(), v.parse().unwrap());
        }
        map
    }

    fn with_token() -> Access {
        Access {
            token: Some("0123456789abcdef0123".into()),
            open_probes: true,
            allowed_origins: vec!["https://ops.example".into()],
        }
    }

    fn status(access: &Access, method: Method, path: &str, h: &HeaderMap) -> u16 {
        match access.check(&method, path, h) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn the_token_is_required_except_on_open_probes() {
        let a = with_token();
        let json = (header::CONTENT_TYPE, "application/json");
        let none = headers(std::slice::from_ref(&json));
        let good = headers(&[
            json.clone(),
            (header::AUTHORIZATION, "Bearer 0123456789abcdef0123"),
        ]);
        let bad = headers(&[json, (header::AUTHORIZATION, "Bearer 0123456789abcdef012")]);
        assert_eq!(status(&a, Method::POST, "/v1/pipes/p/pause", &none), 401);
        assert_eq!(status(&a, Method::POST, "/v1/pipes/p/pause", &bad), 401);
        assert_eq!(status(&a, Method::POST, "/v1/pipes/p/pause", &good), 200);
        assert_eq!(status(&a, Method::GET, "/v1/pipes", &none), 401);
        assert_eq!(status(&a, Method::GET, "/nothing", &none), 401);
        for probe in PROBES {
            assert_eq!(status(&a, Method::GET, probe, &none), 200, "{probe}");
        }
        let closed = Access {
            open_probes: false,
            ..with_token()
        };
        assert_eq!(status(&closed, Method::GET, "/healthz", &none), 401);
        assert_eq!(status(&closed, Method::GET, "/healthz", &good), 200);
    }

    #[test]
    fn browsers_are_refused_unless_their_origin_is_allowed() {
        let a = with_token();
        let auth = (header::AUTHORIZATION, "Bearer 0123456789abcdef0123");
        let foreign = headers(&[auth.clone(), (header::ORIGIN, "https://evil.example")]);
        assert_eq!(status(&a, Method::GET, "/healthz", &foreign), 403);
        assert_eq!(status(&a, Method::GET, "/v1/pipes", &foreign), 403);
        let allowed = headers(&[auth.clone(), (header::ORIGIN, "https://ops.example")]);
        assert_eq!(status(&a, Method::GET, "/v1/pipes", &allowed), 200);
        // The console's own page: its origin names the Host it calls.
        let json = (header::CONTENT_TYPE, "application/json");
        let own = |origin: &str, host: &str| {
            let h = headers(&[
                auth.clone(),
                json.clone(),
                (header::ORIGIN, origin),
                (header::HOST, host),
            ]);
            status(&a, Method::POST, "/v1/pipes/p/pause", &h)
        };
        assert_eq!(own("http://127.0.0.1:9187", "127.0.0.1:9187"), 200);
        assert_eq!(
            own("https://Tributary.internal:9187", "tributary.internal:9187"),
            200
        );
        assert_eq!(own("http://127.0.0.1:8080", "127.0.0.1:9187"), 403);
        assert_eq!(own("http://127.0.0.1", "127.0.0.1:9187"), 403);
        assert_eq!(own("null", "null"), 403);
    }

    #[test]
    fn the_consoles_assets_need_no_token_and_its_data_does() {
        let a = with_token();
        for (path, _, _) in ASSETS {
            assert_eq!(
                status(&a, Method::GET, path, &HeaderMap::new()),
                200,
                "{path}"
            );
            let post = headers(&[(header::CONTENT_TYPE, "application/json")]);
            assert_eq!(status(&a, Method::POST, path, &post), 401, "{path}");
        }
        assert_eq!(
            status(&a, Method::GET, "/v1/pipes/p/samples", &HeaderMap::new()),
            401
        );
        // Without a token the Host rule still holds for them.
        let rebound = headers(&[(header::HOST, "attacker.example:9187")]);
        assert_eq!(status(&Access::default(), Method::GET, "/", &rebound), 403);
    }

    #[test]
    fn mutating_requests_need_json() {
        let a = Access::default();
        let form = headers(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")]);
        assert_eq!(status(&a, Method::POST, "/v1/pipes/p/pause", &form), 415);
        assert_eq!(
            status(
                &a,
                Method::DELETE,
                "/v1/pipes/p/tables/d.t",
                &HeaderMap::new()
            ),
            415
        );
        let json = headers(&[(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")]);
        assert_eq!(status(&a, Method::POST, "/v1/pipes/p/pause", &json), 200);
        assert_eq!(status(&a, Method::GET, "/v1/pipes", &HeaderMap::new()), 200);
    }

    #[test]
    fn without_a_token_only_addresses_and_localhost_are_served() {
        let a = Access::default();
        let served = |host: &str| {
            status(
                &a,
                Method::GET,
                "/v1/pipes",
                &headers(&[(header::HOST, host)]),
            ) == 200
        };
        for host in [
            "127.0.0.1:9187",
            "localhost:9187",
            "[::1]:9187",
            "10.0.0.5",
            "LOCALHOST",
        ] {
            assert!(served(host), "{host}");
        }
        for host in ["attacker.example:9187", "127.0.0.1.nip.io", "[evil]:1"] {
            assert!(!served(host), "{host}");
        }
        // With a token, names are fine: the token is what a rebound page lacks.
        let h = headers(&[
            (header::HOST, "tributary.internal:9187"),
            (header::AUTHORIZATION, "Bearer 0123456789abcdef0123"),
        ]);
        assert_eq!(status(&with_token(), Method::GET, "/v1/pipes", &h), 200);
    }
}
