//! The web console: one HTML page, its script, its style sheet and its icon, embedded in the
//! binary and served at `/` on the API's listener. The page holds no data: its script reads and steers
//! the pipes through the API's own routes, with the API's token.
//!
//! Invariants:
//! - the assets are the same bytes for everyone (no data, no secret), so [`super::guard`]
//!   serves them without the token; every datum and every action goes through a `/v1` route
//!   that needs it;
//! - every asset is answered with a Content-Security-Policy that lets the page load and
//!   connect only to its own origin, run no inline script and be framed by no one: the console
//!   works offline and a script injected into a table name or a reason cannot run;
//! - the script keeps the token in the tab's `sessionStorage` and sends it as
//!   `Authorization: Bearer`; no cookie is set, so no other site can make the browser act
//!   with it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// What the console's assets may do (see the module doc): nothing but this origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self'; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The console's assets: path, content type, bytes.
pub(crate) const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/console.js",
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    ),
    (
        "/console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("console/favicon.svg"),
    ),
];

/// An asset's answer: its bytes with the headers every asset gets.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // A new binary's assets are fetched at once; they are a few kilobytes.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
